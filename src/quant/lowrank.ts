// Low-rank plus quantized: W ≈ L₁·L₂ + Q̂, initialised by alternating (LQ-LoRA, Guo et al. 2023;
// ReALLM, Leconte et al. 2024): L₁L₂ = SVD_r(W − Q̂), then Q̂ = quant(W − L₁L₂), from Q̂ = 0, until the
// Frobenius error ‖W − L₁L₂ − Q̂‖ stops falling; the best iterate is kept. The quantizer is a
// parameter: ReALLM's vector quantizer, or LQ-LoRA's RTN/NF4 grid.

import type { Rng } from "../core/rng.js";
import { roundToF16 } from "../core/f16.js";
import type { HostGemm } from "./linalg/host-gemm.js";
import { truncatedSvd } from "./linalg/svd.js";

export interface LowRankFactors {
  rank: number;
  /** L₁ = U·√Σ [n, r]. */
  l1: Float32Array;
  /** L₂ = √Σ·Vᵀ [r, k]. */
  l2: Float32Array;
}

export interface AlternatingResult<S> {
  factors: LowRankFactors;
  /** What the quantizer returned for the kept iterate. */
  state: S;
  /** ‖W − L₁L₂ − Q̂‖_F after each iteration (the last one may be the rise that stopped it). */
  errors: number[];
  /** Seconds in the SVDs and in the quantizer, summed over iterations. */
  svdSeconds: number;
  quantizeSeconds: number;
}

export interface AlternatingOptions {
  gemm: HostGemm;
  rng: Rng;
  /** At most this many (SVD, quantize) rounds (default 8). */
  maxIterations?: number;
  /** Round L₁, L₂ to float16 (as stored), so Q̂ is fitted to the factors a loader will see. */
  float16Factors?: boolean;
  /**
   * Start each round's SVD from the previous round's L₂ (its right singular subspace) with one power
   * iteration instead of two from a random start: the target W − Q̂ moves little between rounds.
   */
  warmStart?: boolean;
  /**
   * Power iterations of a warm-started SVD (default 1). ReALLM takes 0: its rank is small and each
   * round's start is the last round's subspace, so the rounds themselves iterate it; a 0 costs two
   * of the four passes over W − Q̂ and moved the benchmark's errors by ≤ 0.15 %.
   */
  warmPowerIterations?: number;
  /**
   * W − Q̂, its SVD's products with it and L₁L₂ in float32 instead of float64 (the weights are
   * float32 and the factors are stored in float16 or float32): half the memory traffic and faster
   * ORT Gemms.
   */
  float32?: boolean;
}

/**
 * quant(R) → Q̂ (same shape as R) and whatever the caller needs to keep; `error`, ‖R − Q̂‖²_F, when
 * the quantizer summed it already. Q̂ is read before the next call, so it may live in a buffer the
 * quantizer reuses.
 */
export type QuantizedResidual<S> = { deq: Float32Array; state: S; error?: number };
export type ResidualQuantizer<S> = (residual: Float32Array) => Promise<QuantizedResidual<S>> | QuantizedResidual<S>;

/** L₁L₂ [n, k], in float32 or float64. */
async function product(f: LowRankFactors, n: number, k: number, gemm: HostGemm, float32: boolean): Promise<Float32Array | Float64Array> {
  if (float32) return f.rank === 0 ? new Float32Array(n * k) : gemm.mul(f.l1, f.l2, { m: n, k: f.rank, n: k });
  if (f.rank === 0) return new Float64Array(n * k);
  return gemm.mul(Float64Array.from(f.l1), Float64Array.from(f.l2), { m: n, k: f.rank, n: k });
}

/**
 * W − L₁L₂ [n, k] as float32. In float32 one ORT Gemm with W as its C input (its copy of W is a
 * memcpy; a JavaScript pass over W and the product cost 1–2 ns a value); else the float64 product,
 * then the difference.
 */
async function residualOf(w: Float32Array, f: LowRankFactors, n: number, k: number, gemm: HostGemm, float32: boolean): Promise<Float32Array> {
  if (float32 && f.rank > 0) return gemm.mulAdd(w, f.l1, f.l2, { m: n, k: f.rank, n: k, alpha: -1 });
  const l = await product(f, n, k, gemm, float32);
  const residual = new Float32Array(n * k);
  for (let i = 0; i < residual.length; i++) residual[i] = w[i]! - l[i]!;
  return residual;
}

/** The rank-r factors of A [n, k] with √Σ on both sides. */
export async function lowRankFactors(a: Float32Array | Float64Array, n: number, k: number, rank: number, opts: AlternatingOptions, start?: LowRankFactors): Promise<LowRankFactors> {
  const warm = start && start.rank > 0 ? { start: Float64Array.from(start.l2), powerIterations: opts.warmPowerIterations ?? 1 } : {};
  const svd = await truncatedSvd(a, n, k, rank, { gemm: opts.gemm, rng: opts.rng, ...warm });
  const r = svd.rank;
  const l1 = new Float32Array(n * r);
  const l2 = new Float32Array(r * k);
  for (let j = 0; j < r; j++) {
    const root = Math.sqrt(svd.s[j]!);
    for (let i = 0; i < n; i++) l1[i * r + j] = svd.u[i * r + j]! * root;
    for (let c = 0; c < k; c++) l2[j * k + c] = svd.vt[j * k + c]! * root;
  }
  if (opts.float16Factors) {
    for (let i = 0; i < l1.length; i++) l1[i] = roundToF16(l1[i]!);
    for (let i = 0; i < l2.length; i++) l2[i] = roundToF16(l2[i]!);
  }
  return { rank: r, l1, l2 };
}

/** Alternating low-rank + quantized initialisation of W [n, k] at rank `rank` (0: Q̂ = quant(W) alone). */
export async function alternatingInit<S>(w: Float32Array, n: number, k: number, rank: number, quantize: ResidualQuantizer<S>, opts: AlternatingOptions): Promise<AlternatingResult<S>> {
  let svdSeconds = 0;
  let quantizeSeconds = 0;
  const quantizeTimed = async (residual: Float32Array) => {
    const t0 = performance.now();
    const out = await quantize(residual);
    quantizeSeconds += (performance.now() - t0) / 1000;
    return out;
  };
  const empty: LowRankFactors = { rank: 0, l1: new Float32Array(0), l2: new Float32Array(0) };
  if (rank === 0) {
    const q = await quantizeTimed(w);
    let err = 0;
    for (let i = 0; i < w.length; i++) err += (w[i]! - q.deq[i]!) ** 2;
    return { factors: empty, state: q.state, errors: [Math.sqrt(err)], svdSeconds, quantizeSeconds };
  }
  const maxIterations = opts.maxIterations ?? 8;
  let qDeq: Float32Array | null = null; // Q̂ = 0 first: L = SVD_r(W)
  let best: { factors: LowRankFactors; state: S; error: number } | null = null;
  const errors: number[] = [];
  // W − Q̂, rewritten each round (the SVD keeps nothing of it).
  const target = opts.float32 ? new Float32Array(n * k) : new Float64Array(n * k);
  for (let it = 0; it < maxIterations; it++) {
    const t0 = performance.now();
    if (qDeq) for (let i = 0; i < target.length; i++) target[i] = w[i]! - qDeq[i]!;
    else target.set(w);
    const factors = await lowRankFactors(target, n, k, rank, opts, opts.warmStart && best ? best.factors : undefined);
    const residual = await residualOf(w, factors, n, k, opts.gemm, opts.float32 ?? false);
    svdSeconds += (performance.now() - t0) / 1000;
    const q = await quantizeTimed(residual);
    let err = q.error;
    if (err === undefined) {
      err = 0;
      for (let i = 0; i < residual.length; i++) err += (residual[i]! - q.deq[i]!) ** 2;
    }
    err = Math.sqrt(err);
    errors.push(err);
    if (best && err >= best.error) break;
    best = { factors, state: q.state, error: err };
    qDeq = q.deq;
  }
  return { factors: best!.factors, state: best!.state, errors, svdSeconds, quantizeSeconds };
}
