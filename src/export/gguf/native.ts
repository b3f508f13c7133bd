// Which ggml type holds a quantized layer's own grid, and the layer's codes written as that type's
// blocks. The grids coincide only for RTN/GPTQ codes in contiguous groups of 32 columns:
//   4-bit symmetric  s·(q − 8)        → Q4_0  d = s
//   4-bit asymmetric s·(q − z)        → Q4_1  d = s, m = −z·s  (x = q·d + m)
//   8-bit symmetric  s·(q − 128)      → Q8_0  d = s, stored as q − 128
// The codes are copied; only d (and m) pass through float16. A folder's scales are already float16
// values (GPTQ stores them so), which makes Q4_0 and Q8_0 exact; Q4_1's m = −z·s is a product that
// float16 rounds, so a Q4_1 layer moves each weight by at most half an ulp of m (measured, reported).
// Every other layer (2/3-bit, other group sizes, act-order, NF4, ReALLM) has no ggml type of its
// own grid among those slimtune writes: exporting it changes its weights.

import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";
import { GGML_TYPES, type GgmlType } from "../../formats/gguf/ggml-types.js";
import { permuteQK } from "../../formats/gguf/llama.js";
import type { QuantizedLinear, RtnLinear } from "../../quant/types.js";

/** The ggml type whose grid is the layer's own, or null when none is. */
export function nativeGgmlType(q: QuantizedLinear): GgmlType | null {
  if (q.kind !== "rtn" || q.groupSize !== 32 || !contiguousGroups(q)) return null;
  const half = 1 << (q.spec.bits - 1);
  const symmetric = q.zeros.every((z) => z === half);
  if (q.spec.bits === 4) return symmetric ? GGML_TYPES.Q4_0 : GGML_TYPES.Q4_1;
  if (q.spec.bits === 8 && symmetric) return GGML_TYPES.Q8_0;
  return null;
}

/** Act-order folders permute columns into groups; only g_idx[k] = ⌊k / 32⌋ is ggml's layout. */
function contiguousGroups(q: RtnLinear): boolean {
  if (!q.groupIndex) return true;
  for (let k = 0; k < q.groupIndex.length; k++) if (q.groupIndex[k] !== Math.floor(k / q.groupSize)) return false;
  return true;
}

export interface NativeBlocks {
  data: Uint8Array;
  /** Largest |w_file − w_layer| any weight moved by float16 rounding of d and m (0: exact). */
  maxAbsChange: number;
}

/**
 * The layer's codes as `type`'s blocks (type = nativeGgmlType(q)), rows in the file's order: the
 * Q/K permutation (heads > 0) moves whole rows, so row n of the file is layer row order[n].
 */
export function nativeBlocks(q: RtnLinear, type: GgmlType, heads: number, headDim: number): NativeBlocks {
  const { outFeatures: N, inFeatures: K } = q;
  const G = K / 32;
  const out = new Uint8Array(N * G * type.blockBytes);
  const view = new DataView(out.buffer);
  const order = heads > 0 ? permuteQK(Float32Array.from({ length: N }, (_, n) => n), heads, headDim, "gguf") : null;
  let maxAbsChange = 0;
  for (let n = 0; n < N; n++) {
    const src = order ? order[n]! : n;
    for (let g = 0; g < G; g++) {
      const o = (n * G + g) * type.blockBytes;
      const s = q.scales[src * G + g]!;
      const z = q.zeros[src * G + g]!;
      const dBits = f32ToF16Bits(s);
      const d = f16BitsToF32(dBits);
      view.setUint16(o, dBits, true);
      const codes = q.codes.subarray(src * K + g * 32, src * K + g * 32 + 32);
      let m = 0;
      let qs = o + 2;
      if (type === GGML_TYPES.Q4_1) {
        const mBits = f32ToF16Bits(-z * s);
        m = f16BitsToF32(mBits);
        view.setUint16(o + 2, mBits, true);
        qs = o + 4;
      }
      if (type === GGML_TYPES.Q8_0) for (let j = 0; j < 32; j++) view.setInt8(qs + j, codes[j]! - 128);
      else for (let j = 0; j < 16; j++) out[qs + j] = codes[j]! | (codes[j + 16]! << 4);
      // What each weight becomes against what the layer computes, s·(q − z).
      for (let j = 0; j < 32; j++) {
        const layer = Math.fround(s * (codes[j]! - z));
        const file = type === GGML_TYPES.Q4_1 ? Math.fround(Math.fround(codes[j]! * d) + m) : Math.fround(d * (codes[j]! - z));
        maxAbsChange = Math.max(maxAbsChange, Math.abs(file - layer));
      }
    }
  }
  return { data: out, maxAbsChange };
}
