// Large matrix products of host arrays through ONNX Runtime: C = α·op(A)·op(B) (and C + α·op(A)·op(B))
// as a one-node Gemm graph, compiled once per dtype, transposition and α with symbolic sizes, so the
// factorizations (linalg/blocked-cholesky.ts), whose operands change shape at every step, reuse one
// session. The heavy products of GPTQ (lazy batch updates), of randomized SVD and of k-means run
// here: ORT's Gemm reaches 10-100+ GFLOPS on this CPU where a JavaScript loop manages ~1. float32
// is what GPTQ uses (as its reference); float64 keeps host maths exact enough to compare against a
// float64 reference.

import { type CompiledGraph, Graph, GraphCache, type OpDef, gemm } from "../../engine/index.js";

/**
 * ONNX Gemm with its C input (Y = α·op(A)·op(B) + β·C), which the engine's differentiable `gemm`
 * does not expose: a product subtracted from a matrix in one pass, without a second elementwise
 * pass over the result. Host maths only, so no gradient.
 */
const GemmWithC: OpDef = { type: "Gemm" };

export type GemmArray = Float32Array | Float64Array;

export interface GemmShape {
  /** Rows of op(A) and of C. */
  m: number;
  /** Inner dimension. */
  k: number;
  /** Columns of op(B) and of C. */
  n: number;
  transA?: boolean;
  transB?: boolean;
  /** Scales the product (ONNX Gemm's alpha); 1 when absent. */
  alpha?: number;
}

/** A cache of Gemm sessions; call `release()` when done with it. */
export class HostGemm {
  private readonly cache: GraphCache;

  constructor(opts: { threads?: number } = {}) {
    this.cache = new GraphCache({ threads: opts.threads, memoryArena: false });
  }

  /** op(A) [m, k] · op(B) [k, n] → C [m, n], in A's precision (A and B must share it). */
  async mul<T extends GemmArray>(a: T, b: T, s: GemmShape): Promise<T> {
    const dtype = dtypeOf(a);
    if (dtypeOf(b) !== dtype) throw new TypeError("HostGemm.mul: A and B must both be Float32Array or both Float64Array");
    checkSizes("mul", a, b, s);
    const ta = Boolean(s.transA);
    const tb = Boolean(s.transB);
    const aShape = ta ? [s.k, s.m] : [s.m, s.k];
    const bShape = tb ? [s.n, s.k] : [s.k, s.n];
    const alpha = s.alpha ?? 1;
    const key = `${dtype}:${ta ? "T" : "N"}${tb ? "T" : "N"}:${alpha}`;
    const compiled: CompiledGraph = await this.cache.get(key, () => {
      const g = new Graph();
      const [m, k, n] = [g.sym("m"), g.sym("k"), g.sym("n")];
      const av = g.input("a", ta ? [k, m] : [m, k], dtype);
      const bv = g.input("b", tb ? [n, k] : [k, n], dtype);
      return { graph: g, outputs: { c: gemm(av, bv, { transA: ta, transB: tb, alpha }) } };
    });
    const out = await compiled.run({ a: { data: a, shape: aShape }, b: { data: b, shape: bShape } });
    return out.c!.data as T;
  }

  /**
   * C + α·op(A)·op(B) in one ORT Gemm (β = 1; α = s.alpha, default 1): with α = −1, GPTQ's lazy
   * batch update of the columns not yet quantized. C [m, n] is not modified; the result is a new array.
   */
  async mulAdd<T extends GemmArray>(c: T, a: T, b: T, s: GemmShape): Promise<T> {
    const dtype = dtypeOf(a);
    if (dtypeOf(b) !== dtype || dtypeOf(c) !== dtype) throw new TypeError("HostGemm.mulAdd: C, A and B must share one precision");
    checkSizes("mulAdd", a, b, s);
    if (c.length !== s.m * s.n) throw new RangeError(`HostGemm.mulAdd: C has ${c.length} values; [${s.m}, ${s.n}] needs ${s.m * s.n}`);
    const ta = Boolean(s.transA);
    const tb = Boolean(s.transB);
    const alpha = s.alpha ?? 1;
    const key = `${dtype}:${ta ? "T" : "N"}${tb ? "T" : "N"}:${alpha}:C`;
    const compiled: CompiledGraph = await this.cache.get(key, () => {
      const g = new Graph();
      const [m, k, n] = [g.sym("m"), g.sym("k"), g.sym("n")];
      const av = g.input("a", ta ? [k, m] : [m, k], dtype);
      const bv = g.input("b", tb ? [n, k] : [k, n], dtype);
      const cv = g.input("c", [m, n], dtype);
      const attrs = { transA: ta ? 1 : 0, transB: tb ? 1 : 0, alpha: { float: alpha }, beta: { float: 1 } };
      return { graph: g, outputs: { y: g.add(GemmWithC, [av, bv, cv], [m, n], dtype, attrs) } };
    });
    const out = await compiled.run({
      a: { data: a, shape: ta ? [s.k, s.m] : [s.m, s.k] },
      b: { data: b, shape: tb ? [s.n, s.k] : [s.k, s.n] },
      c: { data: c, shape: [s.m, s.n] },
    });
    return out.y!.data as T;
  }

  async release(): Promise<void> {
    await this.cache.clear();
  }
}

function dtypeOf(a: GemmArray): "float32" | "float64" {
  return a instanceof Float64Array ? "float64" : "float32";
}

function checkSizes(what: string, a: GemmArray, b: GemmArray, s: GemmShape): void {
  if (a.length !== s.m * s.k || b.length !== s.k * s.n) {
    throw new RangeError(`HostGemm.${what}: A has ${a.length} values and B ${b.length}; [${s.m}, ${s.k}] · [${s.k}, ${s.n}] needs ${s.m * s.k} and ${s.k * s.n}`);
  }
}
