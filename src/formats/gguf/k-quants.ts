// ggml's k-quants: super-blocks of 256 values in ggml-common.h's layouts, encoded as ggml's reference
// quantizers (quantize_row_q*_K_ref, what llama-quantize does without an importance matrix) and
// decoded as dequantize_row_q*_K.
//   Q2_K (84 B):  scales[16] (low nibble: 4-bit scale, high: 4-bit min of each 16 values), qs[64]
//                 (2-bit codes), d f16, dmin f16; x = d·sc·q − dmin·m, q in 0..3.
//   Q3_K (110 B): hmask[32] (third bit of each code), qs[64] (low 2 bits), scales[12] (sixteen 6-bit
//                 scales biased by 32), d f16; x = d·(sc − 32)·(q − 4), q in 0..7.
//   Q4_K (144 B): d, dmin f16, scales[12] (eight 6-bit scales and mins), qs[128]; per 32 values
//                 x = d·sc·q − dmin·m, q in 0..15.
//   Q5_K (176 B): d, dmin, scales[12] as Q4_K, qh[32] (fifth bits), qs[128]; q in 0..31.
//   Q6_K (210 B): ql[128], qh[64], scales[16] int8, d f16; per 16 values x = d·sc·(q − 32), q in 0..63.
// Encoding is split in two so a calibrated method can pick its own codes on ggml's grid: kGrid
// chooses a super-block's scales (and mins) and writes them into the block; then each value's code is
// either ggml's nearest one (gridCode) or the caller's, and packCodes lays the codes out.

import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";
import type { BlockTarget } from "../../quant/gptq-blocks.js";
import { f, fitAsymmetric, fitSymmetric, fitSymmetricRefined, nearestInt } from "./k-quant-search.js";

export type KQuantName = "Q2_K" | "Q3_K" | "Q4_K" | "Q5_K" | "Q6_K";
export const K_QUANT_NAMES: readonly KQuantName[] = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];
export const QK_K = 256;
export const K_BLOCK_BYTES: Record<KQuantName, number> = { Q2_K: 84, Q3_K: 110, Q4_K: 144, Q5_K: 176, Q6_K: 210 };

export const isKQuant = (name: string): name is KQuantName => (K_QUANT_NAMES as readonly string[]).includes(name);

/**
 * A super-block's grid: value j·sub … of code q is fround(fround(step·q) − offset) for the
 * asymmetric types (zero = 0) and fround(step·(q − zero)) for the symmetric ones (Q3_K, Q6_K).
 */
export interface KGrid {
  /** Values per sub-block (16 or 32). */
  sub: number;
  /** Largest code. */
  qmax: number;
  /** Code of 0 for symmetric types; 0 for the asymmetric ones. */
  zero: number;
  step: Float32Array;
  offset: Float32Array;
  /** Codes of ggml's scale search, kept for a sub-block whose step rounds to 0 (ggml leaves them). */
  searchCodes: Uint8Array;
}

const half = (x: number) => f16BitsToF32(f32ToF16Bits(x));
const setHalf = (block: Uint8Array, at: number, x: number) => new DataView(block.buffer, block.byteOffset, block.byteLength).setUint16(at, f32ToF16Bits(x), true);
const getHalf = (block: Uint8Array, at: number) => f16BitsToF32(new DataView(block.buffer, block.byteOffset, block.byteLength).getUint16(at, true));
const HEADER_AT: Record<KQuantName, { d: number; dmin?: number; scales: number }> = {
  Q2_K: { d: 80, dmin: 82, scales: 0 },
  Q3_K: { d: 108, scales: 96 },
  Q4_K: { d: 0, dmin: 2, scales: 4 },
  Q5_K: { d: 0, dmin: 2, scales: 4 },
  Q6_K: { d: 208, scales: 192 },
};

/** get_scale_min_k4: the j-th 6-bit scale and min of Q4_K/Q5_K's 12 packed bytes. */
function scaleMin(j: number, q: Uint8Array): [number, number] {
  if (j < 4) return [q[j]! & 63, q[j + 4]! & 63];
  return [(q[j + 4]! & 0xf) | ((q[j - 4]! >> 6) << 4), (q[j + 4]! >> 4) | ((q[j]! >> 6) << 4)];
}

function packScaleMin(scales: Uint8Array, sc: ArrayLike<number>, m: ArrayLike<number>): void {
  scales.fill(0);
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
}

/** Q3_K's j-th 6-bit scale (still biased by 32). */
function q3Scale(j: number, scales: Uint8Array): number {
  const low = j < 8 ? scales[j]! & 0xf : scales[j - 8]! >> 4;
  return low | (((scales[8 + (j % 4)]! >> (2 * (j >> 2))) & 3) << 4);
}

/** Steps (and offsets) of a block as its header says: what decoding and code choice both use. */
function gridOfHeader(name: KQuantName, block: Uint8Array, searchCodes: Uint8Array): KGrid {
  const at = HEADER_AT[name];
  const d = getHalf(block, at.d);
  const dmin = at.dmin === undefined ? 0 : getHalf(block, at.dmin);
  const scales = block.subarray(at.scales);
  const sub = name === "Q4_K" || name === "Q5_K" ? 32 : 16;
  const n = QK_K / sub;
  const step = new Float32Array(n);
  const offset = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    if (name === "Q2_K") {
      step[j] = f(d * (scales[j]! & 0xf));
      offset[j] = f(dmin * (scales[j]! >> 4));
    } else if (name === "Q3_K") step[j] = f(d * (q3Scale(j, scales) - 32));
    else if (name === "Q6_K") step[j] = f(d * ((scales[j]! << 24) >> 24));
    else {
      const [sc, m] = scaleMin(j, scales);
      step[j] = f(d * sc);
      offset[j] = f(dmin * m);
    }
  }
  const qmax = { Q2_K: 3, Q3_K: 7, Q4_K: 15, Q5_K: 31, Q6_K: 63 }[name];
  const zero = name === "Q3_K" ? 4 : name === "Q6_K" ? 32 : 0;
  return { sub, qmax, zero, step, offset, searchCodes };
}

/**
 * ggml's reference choice of a super-block's scales (and mins) for the 256 values x, written into
 * `block`'s header; returns the grid the codes are then chosen on.
 */
export function kGrid(name: KQuantName, x: Float32Array, block: Uint8Array): KGrid {
  const at = HEADER_AT[name];
  const L = new Uint8Array(QK_K);
  if (name === "Q4_K" || name === "Q5_K") {
    // Sub-blocks of 32, weights |x| + rms(x), then the eight scales and mins onto 6 bits.
    const nmax = name === "Q4_K" ? 15 : 31;
    const [rmin, nstep] = name === "Q4_K" ? [-1, 20] : [-0.5, 15];
    const scale = new Float32Array(8);
    const minus = new Float32Array(8);
    const weights = new Float32Array(32);
    for (let j = 0; j < 8; j++) {
      const xs = x.subarray(32 * j, 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(xs[l]! * xs[l]!));
      const av = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = f(av + Math.abs(xs[l]!));
      const fit = fitAsymmetric(xs, weights, L.subarray(32 * j, 32 * j + 32), nmax, f(rmin), f(0.1), nstep, false);
      scale[j] = fit.scale;
      minus[j] = fit.minus;
    }
    const maxScale = Math.max(0, ...scale);
    const maxMin = Math.max(0, ...minus);
    const inv = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    const sc = scale.map((s) => Math.min(63, nearestInt(f(inv * s)) & 0xff));
    const m = minus.map((v) => Math.min(63, nearestInt(f(invMin * v)) & 0xff));
    packScaleMin(block.subarray(at.scales, at.scales + 12), sc, m);
    setHalf(block, at.d, f(maxScale / 63));
    setHalf(block, at.dmin!, f(maxMin / 63));
  } else if (name === "Q2_K") {
    // Sub-blocks of 16 weighted by |x| (absolute error), scales and mins onto 4 bits each.
    const scale = new Float32Array(16);
    const minus = new Float32Array(16);
    for (let j = 0; j < 16; j++) {
      const xs = x.subarray(16 * j, 16 * j + 16);
      const fit = fitAsymmetric(xs, xs.map(Math.abs), L.subarray(16 * j, 16 * j + 16), 3, f(-0.5), f(0.1), 15, true);
      scale[j] = fit.scale;
      minus[j] = fit.minus;
    }
    const maxScale = Math.max(0, ...scale);
    const maxMin = Math.max(0, ...minus);
    const scales = block.subarray(0, 16);
    scales.fill(0);
    if (maxScale > 0) {
      const inv = f(15 / maxScale);
      for (let j = 0; j < 16; j++) scales[j] = nearestInt(f(inv * scale[j]!));
    }
    setHalf(block, at.d, maxScale > 0 ? f(maxScale / 15) : 0);
    if (maxMin > 0) {
      const inv = f(15 / maxMin);
      for (let j = 0; j < 16; j++) scales[j]! |= nearestInt(f(inv * minus[j]!)) << 4;
    }
    setHalf(block, at.dmin!, maxMin > 0 ? f(maxMin / 15) : 0);
  } else if (name === "Q3_K") {
    // Sub-blocks of 16 with make_q3_quants, the scale of largest magnitude onto −32.
    const scale = new Float32Array(16);
    let maxScale = 0;
    let amax = 0;
    for (let j = 0; j < 16; j++) {
      scale[j] = fitSymmetricRefined(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16), 4);
      if (Math.abs(scale[j]!) > amax) {
        amax = Math.abs(scale[j]!);
        maxScale = scale[j]!;
      }
    }
    const scales = block.subarray(96, 108);
    scales.fill(0);
    if (maxScale) {
      const iscale = f(-32 / maxScale);
      for (let j = 0; j < 16; j++) {
        let l = ((nearestInt(f(iscale * scale[j]!)) << 24) >> 24);
        l = Math.max(-32, Math.min(31, l)) + 32;
        if (j < 8) scales[j] = l & 0xf;
        else scales[j - 8]! |= (l & 0xf) << 4;
        scales[8 + (j % 4)]! |= (l >> 4) << (2 * (j >> 2));
      }
      setHalf(block, at.d, f(1 / iscale));
    } else setHalf(block, at.d, 0);
  } else {
    // Q6_K: sub-blocks of 16 with make_qx_quants, the scale of largest magnitude onto −128.
    const scale = new Float32Array(16);
    let maxScale = 0;
    let amax = 0;
    for (let j = 0; j < 16; j++) {
      scale[j] = fitSymmetric(x.subarray(16 * j, 16 * j + 16), L.subarray(16 * j, 16 * j + 16), 32);
      if (Math.abs(scale[j]!) > amax) {
        amax = Math.abs(scale[j]!);
        maxScale = scale[j]!;
      }
    }
    if (amax < f(1e-15)) {
      // ggml zeroes the whole block: every code 0 with d = 0.
      block.fill(0);
      L.fill(0);
    } else {
      const iscale = f(-128 / maxScale);
      setHalf(block, at.d, f(1 / iscale));
      for (let j = 0; j < 16; j++) block[192 + j] = Math.min(127, nearestInt(f(iscale * scale[j]!))) & 0xff;
    }
  }
  return gridOfHeader(name, block, L);
}

/** ggml's code for value v in sub-block j of the grid: the nearest, clamped. */
export function gridCode(grid: KGrid, j: number, v: number): number {
  const step = grid.step[j]!;
  if (grid.zero === 0) return Math.max(0, Math.min(grid.qmax, nearestInt(f(f(v + grid.offset[j]!) / step))));
  return Math.max(-grid.zero, Math.min(grid.qmax - grid.zero, nearestInt(f(v / step)))) + grid.zero;
}

/** What code q of sub-block j decodes to. */
export function gridValue(grid: KGrid, j: number, q: number): number {
  return grid.zero === 0 ? f(f(grid.step[j]! * q) - grid.offset[j]!) : f(grid.step[j]! * (q - grid.zero));
}

/** ggml's codes for x on the grid (a sub-block whose step is 0 keeps the search's codes, as ggml does). */
export function nearestCodes(grid: KGrid, x: Float32Array): Uint8Array {
  const L = new Uint8Array(QK_K);
  for (let i = 0; i < QK_K; i++) {
    const j = Math.floor(i / grid.sub);
    L[i] = grid.step[j] ? gridCode(grid, j, x[i]!) : grid.searchCodes[i]!;
  }
  return L;
}

/** Writes 256 codes into a block whose header kGrid wrote. */
export function packCodes(name: KQuantName, L: Uint8Array, block: Uint8Array): void {
  if (name === "Q2_K" || name === "Q3_K") {
    const qs = block.subarray(name === "Q2_K" ? 16 : 32, name === "Q2_K" ? 80 : 96);
    if (name === "Q3_K") {
      // The third bit of code e goes to hmask byte e mod 32, bit ⌊e / 32⌋.
      const hmask = block.subarray(0, 32);
      hmask.fill(0);
      for (let e = 0; e < QK_K; e++) if (L[e]! > 3) hmask[e % 32]! |= 1 << (e >> 5);
    }
    for (let c = 0; c < 2; c++) for (let l = 0; l < 32; l++) {
      const e = 128 * c + l;
      qs[32 * c + l] = (L[e]! & 3) | ((L[e + 32]! & 3) << 2) | ((L[e + 64]! & 3) << 4) | ((L[e + 96]! & 3) << 6);
    }
  } else if (name === "Q4_K" || name === "Q5_K") {
    const qs = block.subarray(name === "Q4_K" ? 16 : 48);
    if (name === "Q5_K") {
      // The fifth bit of the first half of 64-value chunk c goes to qh bit 2c, of the second to 2c + 1.
      const qh = block.subarray(16, 48);
      qh.fill(0);
      for (let e = 0; e < QK_K; e++) if (L[e]! > 15) qh[e % 32]! |= 1 << (e >> 5);
    }
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) qs[32 * c + l] = (L[64 * c + l]! & 0xf) | ((L[64 * c + 32 + l]! & 0xf) << 4);
  } else {
    for (let h = 0; h < 2; h++) for (let l = 0; l < 32; l++) {
      const e = 128 * h + l;
      block[64 * h + l] = (L[e]! & 0xf) | ((L[e + 64]! & 0xf) << 4);
      block[64 * h + l + 32] = (L[e + 32]! & 0xf) | ((L[e + 96]! & 0xf) << 4);
      block[128 + 32 * h + l] = (L[e]! >> 4) | ((L[e + 32]! >> 4) << 2) | ((L[e + 64]! >> 4) << 4) | ((L[e + 96]! >> 4) << 6);
    }
  }
}

/** The 256 codes of a block (inverse of packCodes). */
export function unpackCodes(name: KQuantName, block: Uint8Array): Uint8Array {
  const L = new Uint8Array(QK_K);
  for (let e = 0; e < QK_K; e++) {
    if (name === "Q2_K" || name === "Q3_K") {
      const qs = block.subarray(name === "Q2_K" ? 16 : 32);
      const c = e >> 7;
      const s = (e >> 5) & 3;
      L[e] = (qs[32 * c + (e & 31)]! >> (2 * s)) & 3;
      if (name === "Q3_K" && (block[e % 32]! >> (e >> 5)) & 1) L[e]! |= 4;
    } else if (name === "Q4_K" || name === "Q5_K") {
      const qs = block.subarray(name === "Q4_K" ? 16 : 48);
      const byte = qs[32 * (e >> 6) + (e & 31)]!;
      L[e] = (e & 32) === 0 ? byte & 0xf : byte >> 4;
      if (name === "Q5_K" && (block[16 + (e % 32)]! >> (e >> 5)) & 1) L[e]! |= 16;
    } else {
      const h = e >> 7;
      const r = e & 127;
      const l = r & 31;
      const s = r >> 5;
      const low = block[64 * h + l + (s & 1 ? 32 : 0)]!;
      const high = (block[128 + 32 * h + l]! >> (2 * s)) & 3;
      L[e] = (s < 2 ? low & 0xf : low >> 4) | (high << 4);
    }
  }
  return L;
}

/** Encodes rows of values (a multiple of 256) as ggml's reference quantizer of `name` does. */
export function encodeKQuant(name: KQuantName, values: Float32Array): Uint8Array {
  const bytes = K_BLOCK_BYTES[name];
  const out = new Uint8Array((values.length / QK_K) * bytes);
  for (let b = 0; b < values.length / QK_K; b++) {
    const x = values.subarray(b * QK_K, (b + 1) * QK_K);
    const block = out.subarray(b * bytes, (b + 1) * bytes);
    const grid = kGrid(name, x, block);
    packCodes(name, nearestCodes(grid, x), block);
  }
  return out;
}

/** Decodes `count` values as dequantize_row_q*_K computes them. */
export function decodeKQuant(name: KQuantName, bytes: Uint8Array, count: number): Float32Array {
  const size = K_BLOCK_BYTES[name];
  const out = new Float32Array(count);
  for (let b = 0; b < count / QK_K; b++) {
    const block = bytes.subarray(b * size, (b + 1) * size);
    const grid = gridOfHeader(name, block, new Uint8Array(0));
    const L = unpackCodes(name, block);
    for (let e = 0; e < QK_K; e++) out[b * QK_K + e] = gridValue(grid, Math.floor(e / grid.sub), L[e]!);
  }
  return out;
}

/**
 * A k-quant as a GPTQ target (quant/gptq-blocks.ts): each super-block's scales and mins chosen as
 * ggml's reference quantizer chooses them (kGrid), codes then picked by the caller on that grid.
 */
export function kQuantTarget(name: KQuantName): BlockTarget {
  return {
    name,
    size: QK_K,
    bytes: K_BLOCK_BYTES[name],
    choose(values, block) {
      const grid = kGrid(name, values, block);
      return {
        code: (c, v) => {
          const j = Math.floor(c / grid.sub);
          return grid.step[j] ? gridCode(grid, j, v) : grid.searchCodes[c]!;
        },
        value: (c, q) => gridValue(grid, Math.floor(c / grid.sub), q),
      };
    },
    pack: (codes, block) => packCodes(name, codes, block),
  };
}
