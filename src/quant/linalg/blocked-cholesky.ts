// The factorization GPTQ needs, U = chol((H + λI)⁻¹) (upper), for Hessians of real widths (K = 1536
// at the SmolLM2 MLP, 4864 at Qwen2.5-0.5B), with its O(K³) work in ONNX Runtime Gemms.
//
// Recursive halving: for A = [[A₁₁, ·], [A₂₁, A₂₂]] = L·Lᵀ,
//   L₁₁⁻¹ = rec(A₁₁);  L₂₁ = A₂₁·L₁₁⁻ᵀ;  S = A₂₂ − L₂₁·L₂₁ᵀ;  L₂₂⁻¹ = rec(S);  (L⁻¹)₂₁ = −L₂₂⁻¹·L₂₁·L₁₁⁻¹,
// so the Cholesky factor and its inverse come out together from four large products per level, and
// only diagonal blocks of `block` or fewer run in JavaScript (cholesky.ts, float64). The earlier
// left-looking version made one product per block of 128 but copied an O(K²) panel out of the
// row-major matrix for each, O(K³/128) copies in all: at K = 4864 those copies took longer than its
// float64 products. Halving copies O(K² log K) and makes ~4/3·K³ flops — what LAPACK's
// potrf + potri + potrf, the reference's cholesky → cholesky_inverse → cholesky, make too.
//
// Precision: float32 products by default, as the reference's torch float32 factorizations (and at
// two to four times the speed of ORT's float64 Gemm here); float64 on request, for checks against
// the flat loops.

import type { GemmArray, GemmShape } from "./host-gemm.js";
import { choleskyLowerInPlace, invertLower } from "./cholesky.js";

export type FactorPrecision = "float32" | "float64";

/** C = α·op(A)·op(B) and C + α·op(A)·op(B) on host arrays; HostGemm fits. */
export interface FactorGemm {
  mul<T extends GemmArray>(a: T, b: T, s: GemmShape): Promise<T>;
  mulAdd<T extends GemmArray>(c: T, a: T, b: T, s: GemmShape): Promise<T>;
}

/**
 * Products with a triangular factor at least this wide are split in halves, so the zero quarter is
 * not multiplied (three half-size products instead of one, recursively: about half the flops at the
 * widths GPTQ meets); narrower ones run as one Gemm, where a call's overhead would eat the saving.
 */
const SPLIT_MIN = 512;

export interface FactorOptions {
  /** Diagonal blocks of at most this size are factored in JavaScript. */
  block?: number;
  /** Triangular factors at least this wide are multiplied in halves (SPLIT_MIN). */
  splitMin?: number;
}

interface Ctx {
  gemm: FactorGemm;
  block: number;
  splitMin: number;
}

function allocLike<T extends GemmArray>(like: T, length: number): T {
  return (like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length)) as T;
}

/** Rows r0..r1, columns c0..c1 of the row-major [·, n] matrix a, as a dense [r1 − r0, c1 − c0] copy. */
function slice<T extends GemmArray>(a: T, n: number, r0: number, r1: number, c0: number, c1: number): T {
  const w = c1 - c0;
  const out = allocLike(a, (r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Writes the dense [·, w] block `b` into a [·, n] at (r0, c0). */
function place(a: GemmArray, n: number, r0: number, c0: number, b: GemmArray, w: number): void {
  const rows = b.length / w;
  for (let r = 0; r < rows; r++) a.set(b.subarray(r * w, (r + 1) * w), (r0 + r) * n + c0);
}

/** The flat float64 loops of cholesky.ts on a block of `block` or fewer. */
function baseCase<T extends GemmArray>(a: T, n: number): T | null {
  const a64 = Float64Array.from(a);
  if (!choleskyLowerInPlace(a64, n)) return null;
  const inv = invertLower(a64, n);
  if (a instanceof Float64Array) return inv as T;
  return Float32Array.from(inv) as T;
}

/** Columns c0..c1 of the row-major [rows, n] matrix a. */
function columns<T extends GemmArray>(a: T, n: number, c0: number, c1: number): T {
  return slice(a, n, 0, a.length / n, c0, c1);
}

/** [left | right], two blocks of the same rows side by side. */
function sideBySide<T extends GemmArray>(left: T, wl: number, right: T, wr: number): T {
  const out = allocLike(left, left.length + right.length);
  place(out, wl + wr, 0, 0, left, wl);
  place(out, wl + wr, 0, wl, right, wr);
  return out;
}

/** α·X·T (or α·X·Tᵀ when `transT`) for X [p, m] and a lower-triangular T [m, m]. */
async function timesLower<T extends GemmArray>(x: T, p: number, m: number, t: T, transT: boolean, alpha: number, ctx: Ctx): Promise<T> {
  const { gemm } = ctx;
  if (m < ctx.splitMin) return gemm.mul(x, t, { m: p, k: m, n: m, transB: transT, alpha });
  const h = m >> 1;
  const m2 = m - h;
  const [x1, x2] = [columns(x, m, 0, h), columns(x, m, h, m)];
  const [t11, t21, t22] = [slice(t, m, 0, h, 0, h), slice(t, m, h, m, 0, h), slice(t, m, h, m, h, m)];
  if (!transT) {
    // X·T = [X₁·T₁₁ + X₂·T₂₁ | X₂·T₂₂]
    const y1 = await gemm.mulAdd(await timesLower(x1, p, h, t11, false, alpha, ctx), x2, t21, { m: p, k: m2, n: h, alpha });
    return sideBySide(y1, h, await timesLower(x2, p, m2, t22, false, alpha, ctx), m2);
  }
  // X·Tᵀ = [X₁·T₁₁ᵀ | X₁·T₂₁ᵀ + X₂·T₂₂ᵀ]
  const y2 = await gemm.mulAdd(await timesLower(x2, p, m2, t22, true, alpha, ctx), x1, t21, { m: p, k: h, n: m2, transB: true, alpha });
  return sideBySide(await timesLower(x1, p, h, t11, true, alpha, ctx), h, y2, m2);
}

/** α·T·X for a lower-triangular T [m, m] and X [m, q]: [T₁₁·X₁ ; T₂₁·X₁ + T₂₂·X₂], rows stay contiguous. */
async function lowerTimes<T extends GemmArray>(t: T, m: number, x: T, q: number, alpha: number, ctx: Ctx): Promise<T> {
  const { gemm } = ctx;
  if (m < ctx.splitMin) return gemm.mul(t, x, { m, k: m, n: q, alpha });
  const h = m >> 1;
  const m2 = m - h;
  const x1 = x.subarray(0, h * q) as T;
  const y1 = await lowerTimes(slice(t, m, 0, h, 0, h), h, x1, q, alpha, ctx);
  const y2 = await gemm.mulAdd(await lowerTimes(slice(t, m, h, m, h, m), m2, x.subarray(h * q) as T, q, alpha, ctx), slice(t, m, h, m, 0, h), x1, { m: m2, k: h, n: q, alpha });
  const out = allocLike(x, m * q);
  out.set(y1);
  out.set(y2, h * q);
  return out;
}

/**
 * The lower triangle of C − P·Pᵀ for P [p, m] and C the [p, p] block of the row-major [·, n] matrix
 * `a` at (r0, r0); the upper triangle of the result is not meaningful (the factorization never reads it).
 */
async function schurLower<T extends GemmArray>(a: T, n: number, r0: number, pm: T, p: number, m: number, ctx: Ctx): Promise<T> {
  const { gemm } = ctx;
  if (p < ctx.splitMin) return gemm.mulAdd(slice(a, n, r0, r0 + p, r0, r0 + p), pm, pm, { m: p, k: m, n: p, transB: true, alpha: -1 });
  const h = p >> 1;
  const p2 = p - h;
  const p1 = pm.subarray(0, h * m) as T;
  const rest = pm.subarray(h * m) as T;
  const out = allocLike(a, p * p);
  place(out, p, 0, 0, await schurLower(a, n, r0, p1, h, m, ctx), h);
  place(out, p, h, 0, await gemm.mulAdd(slice(a, n, r0 + h, r0 + p, r0, r0 + h), rest, p1, { m: p2, k: m, n: h, transB: true, alpha: -1 }), h);
  place(out, p, h, h, await schurLower(a, n, r0 + h, rest, p2, m, ctx), p2);
  return out;
}

/**
 * L⁻¹ for the lower Cholesky factor L of the symmetric `a` [n, n] (a = L·Lᵀ; only its lower
 * triangle is read, and `a` is not modified), in a's precision. Null when `a` is not positive
 * definite.
 */
export async function inverseCholeskyFactor<T extends GemmArray>(a: T, n: number, gemm: FactorGemm, opts: FactorOptions = {}): Promise<T | null> {
  return factor(a, n, { gemm, block: opts.block ?? 128, splitMin: opts.splitMin ?? SPLIT_MIN });
}

async function factor<T extends GemmArray>(a: T, n: number, ctx: Ctx): Promise<T | null> {
  const { block } = ctx;
  if (n <= block) return baseCase(a, n);
  // The split falls on a block boundary, so every base case is a whole block but possibly the last.
  const n1 = block * Math.ceil(Math.ceil(n / block) / 2);
  const n2 = n - n1;
  const li11 = await factor(slice(a, n, 0, n1, 0, n1), n1, ctx);
  if (!li11) return null;
  const l21 = await timesLower(slice(a, n, n1, n, 0, n1), n2, n1, li11, true, 1, ctx);
  const li22 = await factor(await schurLower(a, n, n1, l21, n2, n1, ctx), n2, ctx);
  if (!li22) return null;
  const t = await timesLower(l21, n2, n1, li11, false, 1, ctx);
  const x21 = await lowerTimes(li22, n2, t, n1, -1, ctx);
  const out = allocLike(a, n * n);
  place(out, n, 0, 0, li11, n1);
  place(out, n, n1, 0, x21, n1);
  place(out, n, n1, n1, li22, n2);
  return out;
}

/**
 * The upper-triangular U with H⁻¹ = Uᵀ·U (cholesky.ts upperCholeskyOfInverse: U = J·R⁻¹·J with
 * JHJ = R·Rᵀ, J the index reversal), in `precision`. `diagonal` replaces H's diagonal (GPTQ's
 * dampening), so H itself is neither copied nor written. Null when H is not positive definite.
 */
export async function upperCholeskyOfInverseBlocked(
  h: Float64Array,
  n: number,
  gemm: FactorGemm,
  opts: FactorOptions & { precision?: FactorPrecision; diagonal?: Float64Array } = {},
): Promise<Float32Array | Float64Array | null> {
  const flipped = opts.precision === "float64" ? new Float64Array(n * n) : new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n + (n - 1);
    const dst = i * n;
    for (let j = 0; j <= i; j++) flipped[dst + j] = h[src - j]!;
    if (opts.diagonal) flipped[dst + i] = opts.diagonal[n - 1 - i]!;
  }
  const rInv = await inverseCholeskyFactor(flipped, n, gemm, opts);
  if (!rInv) return null;
  const u = flipped; // reused: the flipped H is no longer needed
  u.fill(0);
  for (let i = 0; i < n; i++) {
    const dst = i * n;
    const src = (n - 1 - i) * n + (n - 1);
    for (let j = i; j < n; j++) u[dst + j] = rInv[src - j]!;
  }
  return u;
}
