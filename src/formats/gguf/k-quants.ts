// ggml's k-quants Q4_K and Q6_K: super-blocks of 256 values with ggml-common.h's layouts.
//   Q4_K (144 bytes): d f16, dmin f16, scales[12] (eight 6-bit scales and eight 6-bit mins packed as
//        get_scale_min_k4 reads them), qs[128]; sub-block j of 32 values: x = d·sc_j·q − dmin·m_j,
//        q in 0..15; each 64 values share 32 bytes, the first 32 in low nibbles, the next in high.
//   Q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d f16; sub-block
//        of 16 values: x = d·sc·(q − 32), q in 0..63.
// Decoding follows dequantize_row_q4_K / dequantize_row_q6_K exactly, so slimtune reads what
// llama.cpp computes. The encoders are plain ones (per sub-block min/max or absmax, then the
// sub-block scales rounded onto the 6- or 8-bit super-scale grid): ggml's reference quantizers
// search each sub-block's scale (make_qkx2_quants, make_qx_quants) and are not ported yet.

import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";
/** What the codec needs of a ggml type (kept structural: ggml-types.ts imports this module). */
interface KQuantType {
  name: string;
  blockBytes: number;
}

const QK = 256;
const fround = Math.fround;
const nearest = (x: number) => Math.round(x);
const half = (x: number) => f16BitsToF32(f32ToF16Bits(x));

export function encodeKQuant(type: KQuantType, values: Float32Array): Uint8Array {
  const blocks = values.length / QK;
  const out = new Uint8Array(blocks * type.blockBytes);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QK, (b + 1) * QK);
    const block = out.subarray(b * type.blockBytes, (b + 1) * type.blockBytes);
    if (type.name === "Q4_K") encodeQ4K(x, block);
    else encodeQ6K(x, block);
  }
  return out;
}

export function decodeKQuant(type: KQuantType, bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let b = 0; b < count / QK; b++) {
    const block = bytes.subarray(b * type.blockBytes, (b + 1) * type.blockBytes);
    const y = out.subarray(b * QK, (b + 1) * QK);
    if (type.name === "Q4_K") decodeQ4K(block, y);
    else decodeQ6K(block, y);
  }
  return out;
}

/** get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K block. */
function scaleMin(j: number, q: Uint8Array): [number, number] {
  if (j < 4) return [q[j]! & 63, q[j + 4]! & 63];
  return [(q[j + 4]! & 0xf) | ((q[j - 4]! >> 6) << 4), (q[j + 4]! >> 4) | ((q[j]! >> 6) << 4)];
}

function decodeQ4K(block: Uint8Array, y: Float32Array): void {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const d = f16BitsToF32(view.getUint16(0, true));
  const dmin = f16BitsToF32(view.getUint16(2, true));
  const scales = block.subarray(4, 16);
  const qs = block.subarray(16, 144);
  for (let c = 0; c < 4; c++) {
    const [sc1, m1] = scaleMin(2 * c, scales);
    const [sc2, m2] = scaleMin(2 * c + 1, scales);
    const d1 = fround(d * sc1);
    const n1 = fround(dmin * m1);
    const d2 = fround(d * sc2);
    const n2 = fround(dmin * m2);
    for (let l = 0; l < 32; l++) {
      const q = qs[32 * c + l]!;
      y[64 * c + l] = fround(fround(d1 * (q & 0xf)) - n1);
      y[64 * c + 32 + l] = fround(fround(d2 * (q >> 4)) - n2);
    }
  }
}

function encodeQ4K(x: Float32Array, block: Uint8Array): void {
  const scale = new Float32Array(8);
  const minus = new Float32Array(8); // −min of each sub-block (≥ 0)
  for (let j = 0; j < 8; j++) {
    let lo = 0;
    let hi = -Infinity;
    for (let l = 0; l < 32; l++) {
      lo = Math.min(lo, x[32 * j + l]!);
      hi = Math.max(hi, x[32 * j + l]!);
    }
    scale[j] = (hi - lo) / 15;
    minus[j] = -lo;
  }
  const d = half(Math.max(...scale) / 63);
  const dmin = half(Math.max(...minus) / 63);
  const sc = Uint8Array.from(scale, (s) => (d ? Math.min(63, nearest(s / d)) : 0));
  const m = Uint8Array.from(minus, (v) => (dmin ? Math.min(63, nearest(v / dmin)) : 0));
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  view.setUint16(0, f32ToF16Bits(d), true);
  view.setUint16(2, f32ToF16Bits(dmin), true);
  const scales = block.subarray(4, 16);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      scales[j] = sc[j]!;
      scales[j + 4] = m[j]!;
    } else {
      scales[j + 4] = (sc[j]! & 0xf) | ((m[j]! & 0xf) << 4);
      scales[j - 4]! |= (sc[j]! >> 4) << 6;
      scales[j]! |= (m[j]! >> 4) << 6;
    }
  }
  const qs = block.subarray(16, 144);
  for (let j = 0; j < 8; j++) {
    const step = d * sc[j]!;
    const offset = dmin * m[j]!;
    for (let l = 0; l < 32; l++) {
      const q = step ? Math.max(0, Math.min(15, nearest((x[32 * j + l]! + offset) / step))) : 0;
      const at = 32 * (j >> 1) + l;
      qs[at] = j % 2 === 0 ? q : qs[at]! | (q << 4);
    }
  }
}

function decodeQ6K(block: Uint8Array, y: Float32Array): void {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  const d = f16BitsToF32(view.getUint16(208, true));
  for (let h = 0; h < 2; h++) {
    const ql = block.subarray(64 * h, 64 * h + 64);
    const qh = block.subarray(128 + 32 * h, 128 + 32 * h + 32);
    const sc = new Int8Array(block.buffer, block.byteOffset + 192 + 8 * h, 8);
    const o = 128 * h;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const q1 = ((ql[l]! & 0xf) | (((qh[l]! >> 0) & 3) << 4)) - 32;
      const q2 = ((ql[l + 32]! & 0xf) | (((qh[l]! >> 2) & 3) << 4)) - 32;
      const q3 = ((ql[l]! >> 4) | (((qh[l]! >> 4) & 3) << 4)) - 32;
      const q4 = ((ql[l + 32]! >> 4) | (((qh[l]! >> 6) & 3) << 4)) - 32;
      y[o + l] = fround(fround(d * sc[is]!) * q1);
      y[o + l + 32] = fround(fround(d * sc[is + 2]!) * q2);
      y[o + l + 64] = fround(fround(d * sc[is + 4]!) * q3);
      y[o + l + 96] = fround(fround(d * sc[is + 6]!) * q4);
    }
  }
}

function encodeQ6K(x: Float32Array, block: Uint8Array): void {
  const scale = new Float32Array(16);
  for (let j = 0; j < 16; j++) {
    let amax = 0;
    for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[16 * j + l]!));
    scale[j] = amax / 31;
  }
  const d = half(Math.max(...scale) / 127);
  const sc = Int8Array.from(scale, (s) => (d ? Math.min(127, nearest(s / d)) : 0));
  const L = new Uint8Array(QK);
  for (let j = 0; j < 16; j++) {
    const step = d * sc[j]!;
    for (let l = 0; l < 16; l++) L[16 * j + l] = (step ? Math.max(-32, Math.min(31, nearest(x[16 * j + l]! / step))) : 0) + 32;
  }
  for (let h = 0; h < 2; h++) {
    const j = 128 * h;
    for (let l = 0; l < 32; l++) {
      block[64 * h + l] = (L[j + l]! & 0xf) | ((L[j + l + 64]! & 0xf) << 4);
      block[64 * h + l + 32] = (L[j + l + 32]! & 0xf) | ((L[j + l + 96]! & 0xf) << 4);
      block[128 + 32 * h + l] = (L[j + l]! >> 4) | ((L[j + l + 32]! >> 4) << 2) | ((L[j + l + 64]! >> 4) << 4) | ((L[j + l + 96]! >> 4) << 6);
    }
  }
  block.set(new Uint8Array(sc.buffer), 192);
  new DataView(block.buffer, block.byteOffset, block.byteLength).setUint16(208, f32ToF16Bits(d), true);
}
