// Round-to-nearest (RTN) integer quantization of a linear layer, per output channel or per group of
// input columns — PEQA's step 1 and GPTQ's quantizer without the Hessian update — and dequantization.
//
// Asymmetric (default), per group of weights w (GPTQ's rule, formats.md §1.5):
//   lo = min(min w, 0), hi = max(max w, 0), s = (hi − lo) / (2^b − 1), z = round(−lo / s),
//   q = clamp(round(w / s) + z, 0, 2^b − 1), ŵ = s · (q − z), round = half to even.
// Whenever the group spans zero (every row of ref-llama-5m) this is exactly the PEQA formula of
// reference.json (`rtn4_per_channel.about`); clamping lo ≤ 0 ≤ hi keeps z inside [0, 2^b − 1] so it is
// storable in GPTQ's qzeros. Arithmetic is float32 step by step (Math.fround), as in PyTorch.
//
// Symmetric: GPTQ's rule z = 2^(b−1), s = 2·max|w| / (2^b − 1). The code range [0, 2^b − 1] then
// covers [−max|w| − s/2, max|w| − s/2]; +max|w| lands on a half step and rounds to the top code, so
// |w − ŵ| ≤ s/2 still holds. (GPTQ leaves lo = 0 for an all-positive group, wasting half the codes and
// clipping the top; we always use [−max|w|, max|w|].)
//
// Guards: an all-zero group gets GPTQ's lo = −1, hi = 1 (s = 2/(2^b − 1), z = round(1/s)), so s is
// never 0 and the group dequantizes to exact zeros.
// v1 zero points (formats.md §1.5): GPTQ "gptq" checkpoints store z − 1, so a true z = 0 is written
// as 2^b − 1, which vLLM, llama.cpp and GPTQModel's v1→v2 conversion decode as 2^b. When the
// asymmetric z rounds to 0 (|lo| < s/2) we therefore widen the group instead: s = hi / (2^b − 2),
// z = 1. The range [−s, hi] still contains the group (|lo| < s_old/2 ≤ s), so nothing clips and the
// error stays ≤ s/2 with the new s. `v1SafeZeros: false` turns this off (the pure formula).

import { SlimtuneError } from "../../core/errors.js";
import { checkQuantSpec, resolveGroupSize } from "../spec.js";
import type { QuantBits, QuantSpec, RtnLinear } from "../types.js";
import type { LayerStorage } from "./storage.js";

export interface RtnOptions {
  /** Module path used in error messages, e.g. "model.layers.0.self_attn.q_proj". */
  layer?: string;
  /** Keep every asymmetric zero point ≥ 1 so GPTQ v1 stores it safely (default true). */
  v1SafeZeros?: boolean;
  /** Counters added to across calls (quantizeModel reports them). */
  stats?: RtnStats;
}

export interface RtnStats {
  /** (row, group) pairs quantized. */
  groups: number;
  /** Groups whose zero point rounded to 0 and were widened to z = 1 (or would be, with v1SafeZeros false). */
  zeroPointsAtZero: number;
}

const fround = Math.fround;

/** Round half to even, like torch.round and numpy.rint. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties go up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Scale s and zero point z of one group whose values span [lo, hi] (lo ≤ 0 ≤ hi: callers clamp, as
 * GPTQ does), by the rules in the header: symmetric, asymmetric, the all-zero guard and the v1-safe
 * widening of z = 0 (`safe`). Shared by RTN and GPTQ, so both write the same kind of checkpoint.
 */
export function rtnGroupParams(lo: number, hi: number, bits: QuantBits, symmetric: boolean, safe: boolean, stats?: RtnStats): { s: number; z: number } {
  const maxq = (1 << bits) - 1;
  let s: number;
  let z: number;
  if (symmetric) {
    const a = Math.max(-lo, hi);
    s = a === 0 ? fround(2 / maxq) : fround(fround(2 * a) / maxq);
    z = 1 << (bits - 1);
  } else {
    if (lo === 0 && hi === 0) {
      lo = -1;
      hi = 1;
    }
    s = fround(fround(hi - lo) / maxq);
    z = roundHalfEven(fround(-lo / s));
    if (z === 0) {
      if (stats) stats.zeroPointsAtZero++;
      if (safe) {
        s = fround(hi / (maxq - 1));
        z = 1;
      }
    }
    if (z > maxq) z = maxq;
  }
  if (stats) stats.groups++;
  return { s, z };
}

/** The code of w in a group with scale s and zero z: clamp(round(w / s) + z, 0, maxq), half to even. */
export function rtnCode(w: number, s: number, z: number, maxq: number): number {
  const q = roundHalfEven(fround(w / s)) + z;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/**
 * Quantizes W [n, k] (row-major, PyTorch's [out, in]) with `spec.scheme` "rtn". Returns codes [n, k],
 * scales and zeros [n, G] with G = k / groupSize.
 */
export function quantizeRtn(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: RtnOptions = {}): RtnLinear {
  checkQuantSpec(spec);
  const layer = opts.layer ?? "the layer";
  if (spec.scheme !== "rtn") {
    throw new SlimtuneError("E_ARG", `quantizeRtn got scheme "${spec.scheme}" for ${layer}; call quantizeNf4 for NF4 (or quantizeLinear, which dispatches)`);
  }
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1 || w.length !== n * k) {
    throw new SlimtuneError("E_SHAPE", `weight of ${layer} has ${w.length} values; shape [${n}, ${k}] needs ${n * k} — pass [out, in] = [N, K]`);
  }
  const gs = resolveGroupSize(spec, k, layer);
  const groups = k / gs;
  const maxq = (1 << spec.bits) - 1;
  const safe = opts.v1SafeZeros ?? true;
  const codes = new Uint8Array(n * k);
  const scales = new Float32Array(n * groups);
  const zeros = new Uint8Array(n * groups);

  for (let row = 0; row < n; row++) {
    for (let g = 0; g < groups; g++) {
      const base = row * k + g * gs;
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < gs; j++) {
        const v = w[base + j]!;
        if (!Number.isFinite(v)) {
          throw new SlimtuneError("E_ARG", `weight [${row}, ${g * gs + j}] of ${layer} is ${v}; quantization needs finite weights — the model file is corrupt or the training diverged`);
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const { s, z } = rtnGroupParams(lo, hi, spec.bits, spec.symmetric, safe, opts.stats);
      scales[row * groups + g] = s;
      zeros[row * groups + g] = z;
      for (let j = 0; j < gs; j++) codes[base + j] = rtnCode(w[base + j]!, s, z, maxq);
    }
  }
  return {
    kind: "rtn",
    spec: { ...spec },
    outFeatures: n,
    inFeatures: k,
    groupSize: gs,
    codes,
    scales,
    zeros,
    bias: null,
  };
}

/** Ŵ [N, K] (row-major) = s · (W̄ − z), in float32; with act-order, column k belongs to group g_idx[k]. */
export function dequantizeRtn(q: RtnLinear): Float32Array {
  const { outFeatures: n, inFeatures: k, groupSize: gs, codes, scales, zeros, groupIndex } = q;
  const groups = k / gs;
  const out = new Float32Array(n * k);
  for (let row = 0; row < n; row++) {
    const base = row * k;
    const gBase = row * groups;
    if (groupIndex) {
      for (let j = 0; j < k; j++) {
        const g = gBase + groupIndex[j]!;
        out[base + j] = scales[g]! * (codes[base + j]! - zeros[g]!);
      }
      continue;
    }
    for (let g = 0; g < groups; g++) {
      const s = scales[gBase + g]!;
      const z = zeros[gBase + g]!;
      const at = base + g * gs;
      for (let j = 0; j < gs; j++) out[at + j] = s * (codes[at + j]! - z);
    }
  }
  return out;
}

/**
 * Storage as slimtune writes RTN layers (a GPTQ checkpoint, formats.md §1.2): codes and zero points
 * at `bits` bits, F16 scales, an I32 g_idx per input row, an F16 bias.
 */
export function rtnStorage(q: RtnLinear): LayerStorage {
  const groups = q.outFeatures * (q.inFeatures / q.groupSize);
  return {
    codeBits: q.outFeatures * q.inFeatures * q.spec.bits,
    scaleBytes: 2 * groups,
    zeroBits: groups * q.spec.bits,
    groupIndexBytes: 4 * q.inFeatures,
    codebookBytes: 0,
    permutationBytes: 0,
    lowRankBytes: 0,
    biasBytes: q.bias ? 2 * q.bias.length : 0,
  };
}
