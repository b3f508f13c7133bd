// ggml's 5-bit blocks of 32 (ggml-common.h), encoded as quantize_row_q5_0_ref / q5_1_ref and decoded
// as dequantize_row_q5_0 / q5_1:
//   Q5_0 (22 B): d f16, qh u32 (fifth bit of value j at bit j), qs[16] (value j low nibble of byte
//                j, value j + 16 high nibble); x = (q − 16)·d, the value of largest magnitude → −16.
//   Q5_1 (24 B): d f16, m f16, then qh and qs as Q5_0; x = q·d + m over the block's [min, max].

import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";

const f = Math.fround;

export function encodeQ5(kind: "Q5_0" | "Q5_1", values: Float32Array): Uint8Array {
  const bytes = kind === "Q5_0" ? 22 : 24;
  const out = new Uint8Array((values.length / 32) * bytes);
  const view = new DataView(out.buffer);
  const codes = new Uint8Array(32);
  for (let b = 0; b < values.length / 32; b++) {
    const x = values.subarray(32 * b, 32 * b + 32);
    const o = b * bytes;
    if (kind === "Q5_0") {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < 32; j++) {
        if (amax < Math.abs(x[j]!)) {
          amax = Math.abs(x[j]!);
          max = x[j]!;
        }
      }
      const d = f(max / -16);
      const id = d ? f(1 / d) : 0;
      view.setUint16(o, f32ToF16Bits(d), true);
      // (int8_t)(v + 16.5f) truncates toward zero; the argument is ≥ 0.5 here.
      for (let j = 0; j < 32; j++) codes[j] = Math.min(31, Math.trunc(f(f(x[j]! * id) + 16.5)));
    } else {
      let min = Infinity;
      let max = -Infinity;
      for (let j = 0; j < 32; j++) {
        min = Math.min(min, x[j]!);
        max = Math.max(max, x[j]!);
      }
      const d = f(f(max - min) / 31);
      const id = d ? f(1 / d) : 0;
      view.setUint16(o, f32ToF16Bits(d), true);
      view.setUint16(o + 2, f32ToF16Bits(min), true);
      // (uint8_t)(v + 0.5f), no clamp in ggml: only the low five bits are stored.
      for (let j = 0; j < 32; j++) codes[j] = Math.trunc(f(f(f(x[j]! - min) * id) + 0.5)) & 0xff;
    }
    const qhAt = kind === "Q5_0" ? o + 2 : o + 4;
    let qh = 0;
    for (let j = 0; j < 32; j++) qh |= ((codes[j]! >> 4) & 1) << j;
    view.setUint32(qhAt, qh >>> 0, true);
    for (let j = 0; j < 16; j++) out[qhAt + 4 + j] = (codes[j]! & 0xf) | ((codes[j + 16]! & 0xf) << 4);
  }
  return out;
}

export function decodeQ5(kind: "Q5_0" | "Q5_1", bytes: Uint8Array, count: number): Float32Array {
  const size = kind === "Q5_0" ? 22 : 24;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < count / 32; b++) {
    const o = b * size;
    const d = f16BitsToF32(view.getUint16(o, true));
    const m = kind === "Q5_1" ? f16BitsToF32(view.getUint16(o + 2, true)) : 0;
    const qhAt = kind === "Q5_0" ? o + 2 : o + 4;
    const qh = view.getUint32(qhAt, true);
    for (let j = 0; j < 32; j++) {
      const byte = bytes[qhAt + 4 + (j % 16)]!;
      const q = (j < 16 ? byte & 0xf : byte >> 4) | (((qh >>> j) & 1) << 4);
      out[32 * b + j] = kind === "Q5_0" ? f((q - 16) * d) : f(f(q * d) + m);
    }
  }
  return out;
}
