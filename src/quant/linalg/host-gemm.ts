// Large matrix products of host arrays through ONNX Runtime: C = op(A)·op(B) as a one-node Gemm graph,
// compiled once per dtype and transposition with symbolic sizes, so the blocked factorizations
// (linalg/blocked-cholesky.ts), whose operands change shape at every step, reuse one session. The heavy products of GPTQ (lazy batch updates), of randomized
// SVD and of k-means run here: ORT's Gemm reaches 10-100+ GFLOPS on this CPU where a JavaScript loop
// manages ~1. float64 keeps host maths exact enough to compare against a float64 reference.

import { type CompiledGraph, Graph, GraphCache, gemm } from "../../engine/index.js";

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
}

/** A cache of Gemm sessions; call `release()` when done with it. */
export class HostGemm {
  private readonly cache: GraphCache;

  constructor(opts: { threads?: number } = {}) {
    this.cache = new GraphCache({ threads: opts.threads, memoryArena: false });
  }

  /** op(A) [m, k] · op(B) [k, n] → C [m, n], in A's precision (A and B must share it). */
  async mul<T extends GemmArray>(a: T, b: T, s: GemmShape): Promise<T> {
    const dtype = a instanceof Float64Array ? "float64" : "float32";
    if ((b instanceof Float64Array ? "float64" : "float32") !== dtype) throw new TypeError("HostGemm.mul: A and B must both be Float32Array or both Float64Array");
    if (a.length !== s.m * s.k || b.length !== s.k * s.n) {
      throw new RangeError(`HostGemm.mul: A has ${a.length} values and B ${b.length}; [${s.m}, ${s.k}] · [${s.k}, ${s.n}] needs ${s.m * s.k} and ${s.k * s.n}`);
    }
    const ta = Boolean(s.transA);
    const tb = Boolean(s.transB);
    const aShape = ta ? [s.k, s.m] : [s.m, s.k];
    const bShape = tb ? [s.n, s.k] : [s.k, s.n];
    const key = `${dtype}:${ta ? "T" : "N"}${tb ? "T" : "N"}`;
    const compiled: CompiledGraph = await this.cache.get(key, () => {
      const g = new Graph();
      const [m, k, n] = [g.sym("m"), g.sym("k"), g.sym("n")];
      const av = g.input("a", ta ? [k, m] : [m, k], dtype);
      const bv = g.input("b", tb ? [n, k] : [k, n], dtype);
      return { graph: g, outputs: { c: gemm(av, bv, { transA: ta, transB: tb }) } };
    });
    const out = await compiled.run({ a: { data: a, shape: aShape }, b: { data: b, shape: bShape } });
    return out.c!.data as T;
  }

  async release(): Promise<void> {
    await this.cache.clear();
  }
}
