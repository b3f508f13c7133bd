// Symbolic dimensions: sizes known only at run time (batch, sequence, past length), for graphs that
// serve many shapes with one session (generation, exported models).
//
// A dimension stays a plain number so that static graphs and every caller that does arithmetic on
// shapes are untouched: sizes ≥ 0 are static, and a negative number is the id of a symbolic size
// that the graph interned. A symbolic size is a polynomial over named symbols with integer
// coefficients ("past + seq", "batch·seq", "4·seq"); equal polynomials get the same id, so shape
// checks (broadcasting, matmul's inner size) keep comparing numbers. Ids lie far below any size
// arithmetic could produce, so a symbol misused in ordinary arithmetic (B * T on ids) yields a number
// the graph rejects instead of a wrong shape.

/** Static sizes above this are refused: they can only come from arithmetic on a symbol's id. */
export const MAX_STATIC_DIM = 2 ** 40;
const ID_BASE = 2 ** 44;

/** A product of symbols (sorted names, "" for the constant term) → its coefficient. */
type Poly = ReadonlyMap<string, number>;

export function isSymbolic(d: number): boolean {
  return d < 0;
}

export function isStaticShape(shape: readonly number[]): boolean {
  return shape.every((d) => d >= 0);
}

export class SymbolTable {
  private readonly polys: Poly[] = [];
  private readonly byKey = new Map<string, number>();

  /** The id of the named base symbol (e.g. "batch_size"), created on first use. */
  symbol(name: string): number {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new RangeError(`symbol name "${name}" must be an identifier`);
    return this.intern(new Map([[name, 1]]));
  }

  /** a + b for any two dims (static or symbolic). */
  add(a: number, b: number): number {
    return this.fromPoly(addPolys(this.poly(a), this.poly(b)));
  }

  /** a · b for any two dims. */
  mul(a: number, b: number): number {
    return this.fromPoly(mulPolys(this.poly(a), this.poly(b)));
  }

  /** The product of a shape's dims: a static count, or a symbolic id. */
  numel(shape: readonly number[]): number {
    return shape.reduce((n, d) => this.mul(n, d), 1);
  }

  /** True when `d` is a static size or an id this table issued. */
  knows(d: number): boolean {
    if (d >= 0) return Number.isSafeInteger(d) && d <= MAX_STATIC_DIM;
    const i = -d - ID_BASE;
    return Number.isInteger(i) && i >= 0 && i < this.polys.length;
  }

  /** The polynomial of a dim: terms by monomial ("" = constant). */
  poly(d: number): Poly {
    if (d >= 0) return new Map(d === 0 ? [] : [["", d]]);
    const p = this.polys[-d - ID_BASE];
    if (!p) throw new RangeError(`dimension ${d} is not a symbol of this graph (a symbol's id was used in arithmetic; use the graph's dims.add / dims.mul)`);
    return p;
  }

  /** The base symbols a dim depends on. */
  symbols(d: number): string[] {
    const out = new Set<string>();
    for (const mono of this.poly(d).keys()) for (const s of mono ? mono.split("*") : []) out.add(s);
    return [...out];
  }

  /** When `d` is exactly one base symbol, its name. */
  baseName(d: number): string | null {
    if (d >= 0) return null;
    const p = this.poly(d);
    const [entry] = p;
    return p.size === 1 && entry![1] === 1 && entry![0] !== "" && !entry![0].includes("*") ? entry![0] : null;
  }

  /** The ONNX dim_param for a symbolic dim: its symbol, or its expression ("past + seq"). */
  name(d: number): string {
    const terms = [...this.poly(d)].map(([mono, c]) => {
      const m = mono.split("*").join(" x ");
      if (mono === "") return String(c);
      return c === 1 ? m : `${c} x ${m}`;
    });
    return terms.join(" + ");
  }

  /** Value of a dim given the base symbols' values (for checking feeds). */
  evaluate(d: number, values: ReadonlyMap<string, number>): number | undefined {
    let total = 0;
    for (const [mono, c] of this.poly(d)) {
      let term = c;
      for (const s of mono ? mono.split("*") : []) {
        const v = values.get(s);
        if (v === undefined) return undefined;
        term *= v;
      }
      total += term;
    }
    return total;
  }

  private fromPoly(p: Poly): number {
    if (p.size === 0) return 0;
    if (p.size === 1 && p.has("")) return p.get("")!;
    return this.intern(p);
  }

  private intern(p: Poly): number {
    const key = [...p].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([m, c]) => `${c}:${m}`).join("|");
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = -(ID_BASE + this.polys.length);
      this.polys.push(p);
      this.byKey.set(key, id);
    }
    return id;
  }
}

function addPolys(a: Poly, b: Poly): Map<string, number> {
  const out = new Map(a);
  for (const [m, c] of b) {
    const sum = (out.get(m) ?? 0) + c;
    if (sum === 0) out.delete(m);
    else out.set(m, sum);
  }
  return out;
}

function mulPolys(a: Poly, b: Poly): Map<string, number> {
  let out = new Map<string, number>();
  for (const [ma, ca] of a) {
    for (const [mb, cb] of b) {
      const mono = [...(ma ? ma.split("*") : []), ...(mb ? mb.split("*") : [])].sort().join("*");
      out = addPolys(out, new Map([[mono, ca * cb]]));
    }
  }
  return out;
}
