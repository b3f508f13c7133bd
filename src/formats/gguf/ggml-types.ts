// ggml tensor types slimtune reads and writes in GGUF files, with the block layouts and reference
// quantizers of ggml-quants.c (formats.md §3.5): F32, F16, Q8_0 (d f16 + 32 int8), Q4_0
// (d f16 + 16 bytes; byte j holds elements j and j + 16, low nibble first; x = (q − 8)·d) and Q4_1
// (d f16, m f16, then Q4_0's 16 bytes; x = q·d + m: an asymmetric 4-bit grid with its minimum);
// Q5_0 and Q5_1 are in q5-quants.ts, the k-quants Q2_K … Q6_K (super-blocks of 256) in k-quants.ts.

import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";
import { decodeKQuant, encodeKQuant, isKQuant } from "./k-quants.js";
import { decodeQ5, encodeQ5 } from "./q5-quants.js";

export type GgmlTypeName = "F32" | "F16" | "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1" | "Q8_0" | "Q2_K" | "Q3_K" | "Q4_K" | "Q5_K" | "Q6_K";

export interface GgmlType {
  name: GgmlTypeName;
  id: number;
  /** Elements per block; a row's ne[0] must be a multiple. */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
}

export const GGML_TYPES: Record<GgmlTypeName, GgmlType> = {
  F32: { name: "F32", id: 0, blockSize: 1, blockBytes: 4 },
  F16: { name: "F16", id: 1, blockSize: 1, blockBytes: 2 },
  Q4_0: { name: "Q4_0", id: 2, blockSize: 32, blockBytes: 18 },
  Q4_1: { name: "Q4_1", id: 3, blockSize: 32, blockBytes: 20 },
  Q5_0: { name: "Q5_0", id: 6, blockSize: 32, blockBytes: 22 },
  Q5_1: { name: "Q5_1", id: 7, blockSize: 32, blockBytes: 24 },
  Q8_0: { name: "Q8_0", id: 8, blockSize: 32, blockBytes: 34 },
  Q2_K: { name: "Q2_K", id: 10, blockSize: 256, blockBytes: 84 },
  Q3_K: { name: "Q3_K", id: 11, blockSize: 256, blockBytes: 110 },
  Q4_K: { name: "Q4_K", id: 12, blockSize: 256, blockBytes: 144 },
  Q5_K: { name: "Q5_K", id: 13, blockSize: 256, blockBytes: 176 },
  Q6_K: { name: "Q6_K", id: 14, blockSize: 256, blockBytes: 210 },
};

/** ggml's type count in the llama.cpp this targets: ids at or above are unknown, not merely unsupported. */
export const GGML_TYPE_COUNT = 41;

/** ggml type names by id, for error messages about types slimtune does not decode (k-quants, IQ, …). */
export const GGML_TYPE_NAMES: Record<number, string> = {
  0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K",
  12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
  20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
  29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
};

export function ggmlTypeById(id: number): GgmlType | undefined {
  return Object.values(GGML_TYPES).find((t) => t.id === id);
}

/** Bytes of a row of `n` elements (n a multiple of the block size). */
export function rowBytes(type: GgmlType, n: number): number {
  return (n / type.blockSize) * type.blockBytes;
}

const fround = Math.fround;
/** C's roundf: halves away from zero. */
const roundf = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

/** Encodes rows of float32 values (row length a multiple of the block size) as `type`. */
export function encodeRows(type: GgmlType, values: Float32Array): Uint8Array {
  if (isKQuant(type.name)) return encodeKQuant(type.name, values);
  if (type.name === "Q5_0" || type.name === "Q5_1") return encodeQ5(type.name, values);
  if (type.name === "F32") return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint8Array(rowBytes(type, values.length));
  const view = new DataView(out.buffer);
  if (type.name === "F16") {
    for (let i = 0; i < values.length; i++) view.setUint16(2 * i, f32ToF16Bits(values[i]!), true);
    return out;
  }
  const blocks = values.length / 32;
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(32 * b, 32 * b + 32);
    const o = b * type.blockBytes;
    if (type.name === "Q8_0") {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[j]!));
      const d = fround(amax / 127);
      const id = d ? fround(1 / d) : 0;
      view.setUint16(o, f32ToF16Bits(d), true);
      for (let j = 0; j < 32; j++) view.setInt8(o + 2 + j, roundf(fround(x[j]! * id)));
    } else if (type.name === "Q4_1") {
      // Q4_1: the block's range [min, max] onto codes 0..15 (quantize_row_q4_1_ref).
      let min = Infinity;
      let max = -Infinity;
      for (let j = 0; j < 32; j++) {
        min = Math.min(min, x[j]!);
        max = Math.max(max, x[j]!);
      }
      const d = fround(fround(max - min) / 15);
      const id = d ? fround(1 / d) : 0;
      view.setUint16(o, f32ToF16Bits(d), true);
      view.setUint16(o + 2, f32ToF16Bits(min), true);
      for (let j = 0; j < 16; j++) {
        // (int8_t)(x0 + 0.5f) truncates toward zero; x0 ≥ 0 here.
        const lo = Math.min(15, Math.trunc(fround(fround(fround(x[j]! - min) * id) + 0.5)));
        const hi = Math.min(15, Math.trunc(fround(fround(fround(x[j + 16]! - min) * id) + 0.5)));
        out[o + 4 + j] = lo | (hi << 4);
      }
    } else {
      // Q4_0: the element of largest magnitude, sign kept, maps to −8.
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[j]!;
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = fround(max / -8);
      const id = d ? fround(1 / d) : 0;
      view.setUint16(o, f32ToF16Bits(d), true);
      for (let j = 0; j < 16; j++) {
        const lo = Math.min(15, Math.trunc(fround(fround(x[j]! * id) + 8.5)));
        const hi = Math.min(15, Math.trunc(fround(fround(x[j + 16]! * id) + 8.5)));
        out[o + 2 + j] = lo | (hi << 4);
      }
    }
  }
  return out;
}

/** Decodes `count` elements of `type` from `bytes` to float32. */
export function decodeRows(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
  if (isKQuant(type.name)) return decodeKQuant(type.name, bytes, count);
  if (type.name === "Q5_0" || type.name === "Q5_1") return decodeQ5(type.name, bytes, count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  if (type.name === "F32") {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  if (type.name === "F16") {
    for (let i = 0; i < count; i++) out[i] = f16BitsToF32(view.getUint16(2 * i, true));
    return out;
  }
  for (let b = 0; b < count / 32; b++) {
    const o = b * type.blockBytes;
    const d = f16BitsToF32(view.getUint16(o, true));
    if (type.name === "Q4_1") {
      const m = f16BitsToF32(view.getUint16(o + 2, true));
      for (let j = 0; j < 32; j++) {
        const byte = bytes[o + 4 + (j % 16)]!;
        out[32 * b + j] = fround(fround((j < 16 ? byte & 15 : byte >> 4) * d) + m);
      }
      continue;
    }
    for (let j = 0; j < 32; j++) {
      if (type.name === "Q8_0") out[32 * b + j] = view.getInt8(o + 2 + j) * d;
      else {
        const byte = bytes[o + 2 + (j % 16)]!;
        out[32 * b + j] = ((j < 16 ? byte & 15 : byte >> 4) - 8) * d;
      }
    }
  }
  return out;
}
