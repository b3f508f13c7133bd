// NF4: QLoRA's code book, nearest-code rounding, blockwise absmax along K, and dequantization.

import { describe, expect, it } from "vitest";
import { nearestNf4Code, nf4Codebook, quantizeNf4 } from "../../src/quant/kinds/nf4.js";
import { dequantize } from "../../src/quant/kinds/index.js";
import type { QuantSpec } from "../../src/quant/types.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { gaussian } from "./helpers.js";

const nf4 = (groupSize: QuantSpec["groupSize"] = 64): QuantSpec => ({ scheme: "nf4", bits: 4, groupSize, symmetric: true });

describe("code book", () => {
  it("holds bitsandbytes' 16 values, sorted, with exact −1, 0 and 1", () => {
    expect(Array.from(nf4Codebook)).toEqual(
      [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
        -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
      ].map(Math.fround),
    );
    for (let i = 1; i < 16; i++) expect(nf4Codebook[i]!).toBeGreaterThan(nf4Codebook[i - 1]!);
  });
});

describe("nearestNf4Code", () => {
  it("maps every code value to itself", () => {
    nf4Codebook.forEach((v, i) => expect(nearestNf4Code(v)).toBe(i));
  });
  it.each([
    [-2, 0], [2, 15], [0.03, 7], [0.05, 8], [-0.05, 6], [0.9, 15], [0.86, 14], [-0.85, 0], [-0.84, 1],
  ])("%d → code %i", (x, code) => {
    expect(nearestNf4Code(x)).toBe(code);
  });
  it("sends a value exactly between two codes to the lower one, and anything above it to the upper", () => {
    for (let i = 0; i < 15; i++) {
      const mid = Math.fround((nf4Codebook[i]! + nf4Codebook[i + 1]!) / 2);
      expect(nearestNf4Code(mid)).toBe(i);
      expect(nearestNf4Code(mid + 1e-6)).toBe(i + 1);
    }
  });
});

describe("quantizeNf4", () => {
  it("recovers weights that are absmax · code values exactly, one absmax per block", () => {
    const k = 32;
    const w = new Float32Array(2 * k);
    const absmax = [0.5, 2, 0.25, 8];
    for (let row = 0; row < 2; row++) {
      for (let j = 0; j < k; j++) w[row * k + j] = absmax[row * 2 + Math.floor(j / 16)]! * nf4Codebook[(j * 7 + row) % 16]!;
      w[row * k] = absmax[row * 2]!; // make sure the block's absmax is present
      w[row * k + 16] = -absmax[row * 2 + 1]!;
    }
    const q = quantizeNf4(w, 2, k, nf4(16));
    expect(Array.from(q.scales)).toEqual(absmax);
    expect(q.zeros).toBeNull();
    expect(q.spec).toEqual({ scheme: "nf4", bits: 4, groupSize: 16, symmetric: true });
    expect(dequantize(q)).toEqual(w);
  });

  it("keeps an all-zero block at code 7 (0.0) with absmax 0", () => {
    const q = quantizeNf4(new Float32Array(64), 1, 64, nf4());
    expect(Array.from(new Set(q.codes))).toEqual([7]);
    expect(q.scales[0]).toBe(0);
    expect(Array.from(new Set(dequantize(q)))).toEqual([0]);
  });

  it.each([64, 32, "channel"] as Array<QuantSpec["groupSize"]>)("error ≤ half the widest code gap · absmax (block %s)", (g) => {
    const n = 32;
    const k = 256;
    const w = gaussian(n * k, 99);
    const q = quantizeNf4(w, n, k, nf4(g));
    const wHat = dequantize(q);
    let halfGap = 0; // the widest gap is at the negative end: (−0.696 − (−1)) / 2 ≈ 0.152
    for (let i = 0; i < 15; i++) halfGap = Math.max(halfGap, (nf4Codebook[i + 1]! - nf4Codebook[i]!) / 2);
    const blocks = k / q.groupSize;
    let worst = 0;
    for (let i = 0; i < w.length; i++) {
      const absmax = q.scales[Math.floor(i / k) * blocks + Math.floor((i % k) / q.groupSize)]!;
      worst = Math.max(worst, Math.abs(w[i]! - wHat[i]!) / absmax);
    }
    expect(worst).toBeLessThanOrEqual(halfGap + 1e-6);
  });

  it.each([
    ["bits 3", () => quantizeNf4(new Float32Array(64), 1, 64, { ...nf4(), bits: 3 }), ["bits 3", "nf4", "bits 4"]],
    ["block not dividing K", () => quantizeNf4(new Float32Array(96), 1, 96, nf4(64), { layer: "L.up_proj" }), ["group size 64", "96", "L.up_proj", "32 or channel"]],
    ["rtn spec", () => quantizeNf4(new Float32Array(64), 1, 64, { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false }), ["quantizeRtn"]],
  ] as Array<[string, () => unknown, string[]]>)("E_ARG: %s", (_label, fn, mentions) => {
    expectSlimtuneError(fn, "E_ARG", ...mentions);
  });
});
