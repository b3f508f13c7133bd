// IEEE 754 half precision (binary16) ↔ float32: round to nearest even, subnormals, ±Inf and NaN.

// One shared scratch word to read a float32's bits without allocating per value.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The binary16 bit pattern nearest to `x` (ties to even). `x` is first rounded to float32, so this is
 * exactly float32 → float16: |x| ≥ 65520 becomes ±Inf, |x| ≤ 2^-25 becomes ±0, NaN stays NaN
 * (quiet, top payload bits kept).
 */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // exponent re-biased for half precision
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): value = m · 2^-24, dropping 14 − e low bits of the 24-bit significand.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    return sign | m; // m = 0x400 carries into the smallest normal, which is the right encoding
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent; out of exponent 30 it yields 0x7c00 (Inf), as it should.
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** The float32 value of a binary16 bit pattern (exact: every half is a float32). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Rounds `x` to the nearest float16 value and returns it as a number. */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

export function float32ToFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
  return out;
}

export function float16ToFloat32(halves: ArrayLike<number>): Float32Array {
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = f16BitsToF32(halves[i]!);
  return out;
}
