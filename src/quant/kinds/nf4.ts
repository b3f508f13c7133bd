// QLoRA's 4-bit NormalFloat (NF4): blockwise absmax scaling along K, then the nearest of 16 code values.
//
// Per row of W [N, K] and per block of `groupSize` input columns (default 64, QLoRA's block size):
//   absmax = max |w|, code = the index of the nearest codebook value to w / absmax, ŵ = absmax · codebook[code].
// With block sizes dividing K this is exactly bitsandbytes' blocking, which runs over the flattened
// row-major tensor. The absmax values are kept as float32, one per block: no double quantization
// (QLoRA's second-level 8-bit quantization of absmax saves 0.37 bits/weight at block 64, but slimtune's
// models are small enough that the 0.5 bits/weight of float32 absmax does not matter).

import { SlimtuneError } from "../../core/errors.js";
import { checkQuantSpec, normalizeSpec, resolveGroupSize } from "../spec.js";
import type { Nf4Linear, QuantSpec } from "../types.js";
import type { LayerStorage } from "./storage.js";

/**
 * The 16 NF4 values, index = code (bitsandbytes csrc/kernels.cu `nf4_dequantization_lut`, QLoRA
 * appendix E): quantiles of N(0, 1) normalized to [−1, 1] with an exact 0.
 */
export const nf4Codebook: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

// Decision thresholds halfway between neighbouring codes (bitsandbytes' dQuantizeNF4 tree compares
// against the same midpoints, choosing the lower code at an exact tie).
const thresholds: Float32Array = Float32Array.from({ length: 15 }, (_, i) => (nf4Codebook[i]! + nf4Codebook[i + 1]!) / 2);

export const defaultNf4BlockSize = 64;

/** The nearest NF4 code for x in [−1, 1] (values outside clamp to the end codes). */
export function nearestNf4Code(x: number): number {
  // Binary search over the 15 sorted thresholds: the code is the number of thresholds below x.
  let lo = 0;
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x > thresholds[mid]!) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Quantizes W [n, k] to NF4 with blocks of `spec.groupSize` columns ("channel" = one block per row). */
export function quantizeNf4(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: { layer?: string } = {}): Nf4Linear {
  checkQuantSpec(spec);
  const layer = opts.layer ?? "the layer";
  if (spec.scheme !== "nf4") {
    throw new SlimtuneError("E_ARG", `quantizeNf4 got scheme "${spec.scheme}" for ${layer}; call quantizeRtn for integer codes (or quantizeLinear, which dispatches)`);
  }
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1 || w.length !== n * k) {
    throw new SlimtuneError("E_SHAPE", `weight of ${layer} has ${w.length} values; shape [${n}, ${k}] needs ${n * k} — pass [out, in] = [N, K]`);
  }
  const bs = resolveGroupSize(spec, k, layer);
  const blocks = k / bs;
  const codes = new Uint8Array(n * k);
  const scales = new Float32Array(n * blocks);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const base = row * k + b * bs;
      let absmax = 0;
      for (let j = 0; j < bs; j++) {
        const v = w[base + j]!;
        if (!Number.isFinite(v)) {
          throw new SlimtuneError("E_ARG", `weight [${row}, ${b * bs + j}] of ${layer} is ${v}; quantization needs finite weights — the model file is corrupt or the training diverged`);
        }
        const a = Math.abs(v);
        if (a > absmax) absmax = a;
      }
      scales[row * blocks + b] = absmax;
      for (let j = 0; j < bs; j++) {
        // An all-zero block keeps absmax 0 and code 7 (the exact 0.0).
        codes[base + j] = absmax === 0 ? 7 : nearestNf4Code(Math.fround(w[base + j]! / absmax));
      }
    }
  }
  return {
    kind: "nf4",
    spec: normalizeSpec(spec),
    outFeatures: n,
    inFeatures: k,
    groupSize: bs,
    codes,
    scales,
    zeros: null,
    bias: null,
  };
}

/** Ŵ [N, K] (row-major) = absmax · codebook[W̄], in float32. */
export function dequantizeNf4(q: Nf4Linear): Float32Array {
  const { outFeatures: n, inFeatures: k, groupSize: bs, codes, scales } = q;
  const blocks = k / bs;
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocks; b++) {
      const s = scales[row * blocks + b]!;
      const base = row * k + b * bs;
      for (let j = 0; j < bs; j++) out[base + j] = s * nf4Codebook[codes[base + j]!]!;
    }
  }
  return out;
}

/** Storage as the slimtune-nf4 layout writes it: 4-bit codes, F32 absmax per block, an F32 bias. */
export function nf4Storage(q: Nf4Linear): LayerStorage {
  return {
    codeBits: q.outFeatures * q.inFeatures * 4,
    scaleBytes: 4 * q.outFeatures * (q.inFeatures / q.groupSize),
    zeroBits: 0,
    groupIndexBytes: 0,
    codebookBytes: 0,
    permutationBytes: 0,
    lowRankBytes: 0,
    biasBytes: q.bias ? 4 * q.bias.length : 0,
  };
}
