// Packs b-bit codes into 32-bit words and back, along either axis of a matrix, as GPTQ stores them.
//
// Every bit width uses one rule: the codes along the packed axis form a little-endian bit stream,
// code i at stream bits [b·i, b·i + b), and word w holds stream bits [32w, 32w + 32). For 2, 4 and 8
// bits that is formats.md §1.3 (code j of a word at bits b·j). For 3 bits it is exactly the
// straddling scheme of §1.4: 32 codes fill 3 words, v10 is split 2 + 1 bits across words A/B and v21
// 1 + 2 bits across B/C. GPTQ: qweight packs along K (axis 0 of [K, N]), qzeros along N (axis 1 of [G, N]).

import { SlimtuneError } from "../core/errors.js";
import type { QuantBits } from "./types.js";

function checkLength(count: number, bits: number, what: string): number {
  if ((count * bits) % 32 !== 0) {
    throw new SlimtuneError(
      "E_SHAPE",
      `${what} has ${count} codes of ${bits} bits = ${count * bits} bits, not a whole number of 32-bit words; the packed dimension must be a multiple of ${32 / gcd(32, bits)} (keep K and N multiples of 32)`,
    );
  }
  return (count * bits) / 32;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

// Packs `count` codes read at src[srcOff + i·srcStride] into words written at dst[dstOff + w·dstStride].
function packRun(src: Uint8Array, srcOff: number, srcStride: number, count: number, bits: number, dst: Uint32Array, dstOff: number, dstStride: number): void {
  const max = (1 << bits) - 1;
  for (let i = 0; i < count; i++) {
    const v = src[srcOff + i * srcStride]!;
    if (v > max) {
      throw new SlimtuneError("E_ARG", `code ${v} at position ${srcOff + i * srcStride} does not fit in ${bits} bits (max ${max}); quantize with the same bit width you pack with`);
    }
    const bit = i * bits;
    const word = bit >>> 5;
    const shift = bit & 31;
    const at = dstOff + word * dstStride;
    dst[at] = dst[at]! | (v << shift);
    if (shift + bits > 32) {
      const next = at + dstStride;
      dst[next] = dst[next]! | (v >>> (32 - shift));
    }
  }
}

function unpackRun(src: Uint32Array, srcOff: number, srcStride: number, count: number, bits: number, dst: Uint8Array, dstOff: number, dstStride: number): void {
  const mask = (1 << bits) - 1;
  for (let i = 0; i < count; i++) {
    const bit = i * bits;
    const word = bit >>> 5;
    const shift = bit & 31;
    const at = srcOff + word * srcStride;
    let v = src[at]! >>> shift;
    if (shift + bits > 32) v |= src[at + srcStride]! << (32 - shift);
    dst[dstOff + i * dstStride] = v & mask;
  }
}

/** Packs a sequence of codes (each < 2^bits) into count·bits/32 words. */
export function packBits(codes: Uint8Array, bits: QuantBits): Uint32Array {
  const words = new Uint32Array(checkLength(codes.length, bits, "the sequence"));
  packRun(codes, 0, 1, codes.length, bits, words, 0, 1);
  return words;
}

/** The `count` codes packed in `words` by packBits. */
export function unpackBits(words: Uint32Array, count: number, bits: QuantBits): Uint8Array {
  const need = checkLength(count, bits, "the sequence");
  if (words.length !== need) {
    throw new SlimtuneError("E_SHAPE", `${words.length} words given; ${count} codes of ${bits} bits need ${need}`);
  }
  const out = new Uint8Array(count);
  unpackRun(words, 0, 1, count, bits, out, 0, 1);
  return out;
}

/**
 * Packs codes [rows, cols] (row-major) along `axis`: axis 0 gives [rows·bits/32, cols] (GPTQ qweight
 * from codes [K, N]); axis 1 gives [rows, cols·bits/32] (GPTQ qzeros from zeros [G, N]).
 */
export function packAlongAxis(codes: Uint8Array, rows: number, cols: number, bits: QuantBits, axis: 0 | 1): Uint32Array {
  if (codes.length !== rows * cols) {
    throw new SlimtuneError("E_SHAPE", `${codes.length} codes given for shape [${rows}, ${cols}] (${rows * cols} needed)`);
  }
  if (axis === 0) {
    const wordRows = checkLength(rows, bits, `axis 0 of [${rows}, ${cols}]`);
    const out = new Uint32Array(wordRows * cols);
    for (let c = 0; c < cols; c++) packRun(codes, c, cols, rows, bits, out, c, cols);
    return out;
  }
  const wordCols = checkLength(cols, bits, `axis 1 of [${rows}, ${cols}]`);
  const out = new Uint32Array(rows * wordCols);
  for (let r = 0; r < rows; r++) packRun(codes, r * cols, 1, cols, bits, out, r * wordCols, 1);
  return out;
}

/** Inverse of packAlongAxis: `rows` and `cols` are the shape of the unpacked codes. */
export function unpackAlongAxis(words: Uint32Array, rows: number, cols: number, bits: QuantBits, axis: 0 | 1): Uint8Array {
  const out = new Uint8Array(rows * cols);
  if (axis === 0) {
    const wordRows = checkLength(rows, bits, `axis 0 of [${rows}, ${cols}]`);
    if (words.length !== wordRows * cols) {
      throw new SlimtuneError("E_SHAPE", `${words.length} words given; [${rows}, ${cols}] packed along axis 0 at ${bits} bits needs [${wordRows}, ${cols}]`);
    }
    for (let c = 0; c < cols; c++) unpackRun(words, c, cols, rows, bits, out, c, cols);
    return out;
  }
  const wordCols = checkLength(cols, bits, `axis 1 of [${rows}, ${cols}]`);
  if (words.length !== rows * wordCols) {
    throw new SlimtuneError("E_SHAPE", `${words.length} words given; [${rows}, ${cols}] packed along axis 1 at ${bits} bits needs [${rows}, ${wordCols}]`);
  }
  for (let r = 0; r < rows; r++) unpackRun(words, r * wordCols, 1, cols, bits, out, r * cols, 1);
  return out;
}

/** [rows, cols] → [cols, rows] for any typed array (codes [N, K] ↔ [K, N], scales [N, G] ↔ [G, N]). */
export function transpose<T extends Uint8Array | Float32Array | Uint16Array | Uint32Array>(a: T, rows: number, cols: number): T {
  const out = new (a.constructor as new (n: number) => T)(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  }
  return out;
}
