// The ReALLM kind: W ≈ L₁·L₂ + Q with Q vector-quantized (types.ts ReallmSpec). Dequantization and
// storage here; finding L₁, L₂ and Q (k-means, the alternating init, the per-matrix choice within a
// bits budget) is quant/reallm.ts.
//
// Q̂ for row n and position p of block b (positions are permuted columns, perm[p]):
//   s = scaleCodes[n, b] / (2^scaleBits − 1) · rowScales[n]
//   Q̂[n, perm[p]] = s · codebook[vqCodes[n, p / d], p mod d]

import type { ReallmLinear, ReallmSpec } from "../types.js";
import type { LayerStorage } from "./storage.js";

/** A block's scale from its code. */
export function blockScale(q: ReallmLinear, row: number, block: number): number {
  const blocks = q.inFeatures / q.spec.blockSize;
  return (q.scaleCodes[row * blocks + block]! / ((1 << q.spec.scaleBits) - 1)) * q.rowScales[row]!;
}

/** Q̂ [N, K] (row-major, original column order). */
export function dequantizeVq(q: ReallmLinear): Float32Array {
  const { outFeatures: n, inFeatures: k, spec, vqCodes, codebook, perm } = q;
  const d = spec.vqDim;
  const bs = spec.blockSize;
  const out = new Float32Array(n * k);
  const sub = k / d;
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < k / bs; b++) {
      const s = blockScale(q, r, b);
      for (let p = b * bs; p < (b + 1) * bs; p += d) {
        const c = vqCodes[r * sub + p / d]! * d;
        for (let j = 0; j < d; j++) out[r * k + (perm ? perm[p + j]! : p + j)] = s * codebook[c + j]!;
      }
    }
  }
  return out;
}

/** out += L₁·L₂ for L₁ [n, r], L₂ [r, k] (float64 accumulation per row). */
export function addLowRank(out: Float32Array, l1: Float32Array, l2: Float32Array, n: number, r: number, k: number): void {
  if (r === 0) return;
  const row = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      const a = l1[i * r + j]!;
      if (a === 0) continue;
      const off = j * k;
      for (let c = 0; c < k; c++) row[c]! += a * l2[off + c]!;
    }
    for (let c = 0; c < k; c++) out[i * k + c]! += row[c]!;
  }
}

/** Ŵ = L₁·L₂ + Q̂, [N, K] in float32. */
export function dequantizeReallm(q: ReallmLinear): Float32Array {
  const out = dequantizeVq(q);
  addLowRank(out, q.l1, q.l2, q.outFeatures, q.spec.rank, q.inFeatures);
  return out;
}

/** Bits of the slimtune-reallm tensors of one layer of shape [n, k] with `spec`, part by part. */
export function reallmStorageOf(spec: ReallmSpec, n: number, k: number, bias: boolean): LayerStorage {
  const lowRankWidth = spec.lowRankDtype === "float16" ? 2 : 4;
  return {
    codeBits: n * (k / spec.vqDim) * spec.codeBits,
    // Block scale codes and the float16 row maxima.
    scaleBytes: Math.ceil((n * (k / spec.blockSize) * spec.scaleBits) / 8) + 2 * n,
    zeroBits: 0,
    groupIndexBytes: 0,
    codebookBytes: 2 * (1 << spec.codeBits) * spec.vqDim,
    permutationBytes: spec.permuted ? k : 0,
    lowRankBytes: lowRankWidth * spec.rank * (n + k),
    biasBytes: bias ? 4 * n : 0,
  };
}

export function reallmStorage(q: ReallmLinear): LayerStorage {
  return reallmStorageOf(q.spec, q.outFeatures, q.inFeatures, q.bias !== null);
}

/** Everything stored for the layer (bias excepted), per weight. */
export function reallmBitsPerWeight(spec: ReallmSpec, n: number, k: number): number {
  const s = reallmStorageOf(spec, n, k, false);
  return (s.codeBits + 8 * (s.scaleBytes + s.codebookBytes + s.permutationBytes + s.lowRankBytes)) / (n * k);
}
