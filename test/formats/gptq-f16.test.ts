// float32 ↔ float16 (GPTQ stores scales and biases as F16): edge values, ties to even, subnormals,
// Inf/NaN, every half round-tripping, and agreement with the safetensors reader's F16 decoding.

import path from "node:path";
import { describe, expect, it } from "vitest";
import { f16BitsToF32, f32ToF16Bits, float16ToFloat32, float32ToFloat16, roundToF16 } from "../../src/core/f16.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { tempDir } from "./helpers.js";

const dir = tempDir("f16");

describe("f32ToF16Bits", () => {
  const cases: Array<[string, number, number]> = [
    ["+0", 0, 0x0000],
    ["−0", -0, 0x8000],
    ["1", 1, 0x3c00],
    ["−2", -2, 0xc000],
    ["0.5", 0.5, 0x3800],
    ["0.1 (rounds down)", 0.1, 0x2e66],
    ["1/3", 1 / 3, 0x3555],
    ["largest half 65504", 65504, 0x7bff],
    ["65519.99 rounds down to 65504", 65519.99, 0x7bff],
    ["65520 (halfway to 2^16) overflows to Inf", 65520, 0x7c00],
    ["1e6 overflows", 1e6, 0x7c00],
    ["−1e6 overflows to −Inf", -1e6, 0xfc00],
    ["+Inf", Infinity, 0x7c00],
    ["−Inf", -Infinity, 0xfc00],
    ["smallest normal 2^-14", 2 ** -14, 0x0400],
    ["largest subnormal 1023·2^-24", 1023 * 2 ** -24, 0x03ff],
    ["smallest subnormal 2^-24", 2 ** -24, 0x0001],
    ["2^-25 is a tie between 0 and 2^-24 → 0 (even)", 2 ** -25, 0x0000],
    ["just above 2^-25 → 2^-24", 2 ** -25 * (1 + 2 ** -23), 0x0001],
    ["3·2^-25 is a tie between 1 and 2 ulps → 2 (even)", 3 * 2 ** -25, 0x0002],
    ["5·2^-25 is a tie between 2 and 3 ulps → 2 (even)", 5 * 2 ** -25, 0x0002],
    ["2^-14 − 2^-25: tie between 0x03ff and 0x0400 → 0x0400 (carry into the exponent)", 2 ** -14 - 2 ** -25, 0x0400],
    ["−2^-24", -(2 ** -24), 0x8001],
    ["1e-10 underflows to 0", 1e-10, 0x0000],
    ["1 + 2^-11: tie → 1 (even)", 1 + 2 ** -11, 0x3c00],
    ["1 + 3·2^-11: tie → 1 + 2^-9 (even)", 1 + 3 * 2 ** -11, 0x3c02],
    ["1 + 2^-11 + 2^-20 rounds up", 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ["2047.5 → 2048 (tie, even)", 2047.5, 0x6800],
    ["65512 (below the halfway point 65520) → 65504", 65512, 0x7bff],
  ];
  it.each(cases)("%s", (_label, x, bits) => {
    expect(f32ToF16Bits(x)).toBe(bits);
  });

  it("NaN stays a quiet NaN", () => {
    const h = f32ToF16Bits(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(f16BitsToF32(h)).toBeNaN();
  });

  it("every half survives half → float32 → half", () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) continue;
      if (f32ToF16Bits(x) !== h) throw new Error(`0x${h.toString(16)} → ${x} → 0x${f32ToF16Bits(x).toString(16)}`);
    }
  });

  it("picks the nearest half (ties to even) for random float32 values", () => {
    let state = 12345;
    for (let i = 0; i < 20000; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const x = Math.fround((state / 2 ** 32 - 0.5) * 2 ** ((i % 40) - 24));
      const h = f32ToF16Bits(x);
      const y = f16BitsToF32(h);
      const mag = h & 0x7fff;
      const below = f16BitsToF32((h & 0x8000) | Math.max(mag - 1, 0));
      const above = f16BitsToF32((h & 0x8000) | Math.min(mag + 1, 0x7bff));
      const err = Math.abs(x - y);
      if (err > Math.abs(x - below) || err > Math.abs(x - above)) throw new Error(`${x} → ${y}, a neighbour is closer`);
    }
  });

  it("roundToF16 keeps the relative error within 2^-11 in the normal range", () => {
    for (const x of [0.013, 0.0226, 1.7, 3e-3, 123.456]) expect(Math.abs(roundToF16(x) - x) / x).toBeLessThanOrEqual(2 ** -11);
  });
});

describe("agreement with the safetensors reader", () => {
  it("float32ToFloat16 → F16 file → SafetensorsFile.float32 equals float16ToFloat32", () => {
    const values = Float32Array.from([0, -0, 1, -2.5, 0.1, 65504, 1e6, -1e-8, 2 ** -24, 3.14159, NaN, -Infinity]);
    const halves = float32ToFloat16(values);
    const file = path.join(dir, "h.safetensors");
    writeSafetensors(file, [{ name: "h", dtype: "F16", shape: [values.length], data: halves }]);
    const read = SafetensorsFile.open(file).float32("h");
    const ours = float16ToFloat32(halves);
    expect(Array.from(read)).toEqual(Array.from(ours));
    expect(ours[5]).toBe(65504);
    expect(ours[6]).toBe(Infinity);
  });
});
