// RTN quantization: the formula against hand computation (incl. half-to-even ties), the reference
// model's scales, the error bound, the z = 0 guard for GPTQ v1, and argument errors.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../../src/models/llama/model.js";
import { dequantize } from "../../src/quant/kinds/index.js";
import { type RtnStats, quantizeRtn, roundHalfEven } from "../../src/quant/kinds/rtn.js";
import type { QuantBits, QuantSpec } from "../../src/quant/types.js";
import { expectSlimtuneError, refModelDir } from "../formats/helpers.js";
import { gaussian } from "./helpers.js";

const rtn = (bits: QuantBits, groupSize: QuantSpec["groupSize"] = "channel", symmetric = false): QuantSpec => ({ scheme: "rtn", bits, groupSize, symmetric });

describe("roundHalfEven", () => {
  it.each([
    [0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [-2.5, -2], [2.4999, 2], [2.5001, 3], [-7.5, -8], [7.5, 8], [0, 0],
  ])("rounds %d to %d", (x, want) => {
    expect(roundHalfEven(x)).toBe(want);
  });
});

describe("quantizeRtn matches hand computation", () => {
  // [label, row, bits, symmetric, scale, zero, codes]; every value is exact in binary, so s, z and q are too.
  const cases: Array<[string, number[], QuantBits, boolean, number, number, number[]]> = [
    ["2-bit, s = 1, z = 1", [-1, 0, 1, 2], 2, false, 1, 1, [0, 1, 2, 3]],
    ["2-bit ties w/s = ±0.5, 1.5 go to even", [-1, -0.5, 0.5, 1.5, 2], 2, false, 1, 1, [0, 1, 1, 3, 3]],
    ["4-bit zero tie −lo/s = 2.5 → z = 2 (half-up would say 3)", [-2.5, 0, 12.5, 3.5], 4, false, 1, 2, [0, 2, 14, 6]],
    ["3-bit zero tie 3.5 → 4; top value clamps", [-3.5, 3.5, 0.5, -0.5], 3, false, 1, 4, [0, 7, 4, 4]],
    ["8-bit, s = 1, z = 128", [-128, 127, 0, -0.5, 1.5], 8, false, 1, 128, [0, 255, 128, 128, 130]],
    ["4-bit s = 0.5: ties 4.5 → 4 and 5.5 → 6", [-0.5, 7, 2.25, 2.75], 4, false, 0.5, 1, [0, 15, 5, 7]],
    ["symmetric 4-bit: s = 2·7.5/15, z = 8", [-7.5, 7.5, 0.5, 1.5, -1], 4, true, 1, 8, [0, 15, 8, 10, 7]],
    ["symmetric 2-bit: s = 2·1.5/3, z = 2", [1.5, -0.5, 0.25, -1.5], 2, true, 1, 2, [3, 2, 2, 0]],
    // In float32 1/s = 7.4999995 (s = fround(2/15) is a hair above 2/15), so z = 7, as in PyTorch.
    ["all-zero row: GPTQ's lo = −1, hi = 1 → s = 2/15, z = 7", [0, 0, 0, 0], 4, false, Math.fround(2 / 15), 7, [7, 7, 7, 7]],
    ["all-negative row: hi clamps to 0, z = 15", [-2, -1, -0.5, -2], 4, false, Math.fround(2 / 15), 15, [0, 8, 11, 0]],
  ];
  it.each(cases)("%s", (_label, row, bits, symmetric, scale, zero, codes) => {
    const q = quantizeRtn(Float32Array.from(row), 1, row.length, rtn(bits, "channel", symmetric));
    expect(q.scales[0]).toBe(scale);
    expect(q.zeros![0]).toBe(zero);
    expect(Array.from(q.codes)).toEqual(codes);
    expect(q.groupSize).toBe(row.length);
  });

  it("keeps one (s, z) per group of input columns, row-major [N, G]", () => {
    const k = 32;
    const w = new Float32Array(2 * k);
    for (let j = 0; j < 16; j++) {
      w[j] = j % 2 ? 2 : -1; // row 0 group 0: s = 1, z = 1
      w[16 + j] = j % 2 ? 4 : -2; // row 0 group 1: s = 2, z = 1
      w[k + j] = j % 2 ? 6 : -3; // row 1 group 0: s = 3, z = 1
      w[k + 16 + j] = j % 2 ? 0 : -3; // row 1 group 1: s = 1, z = 3
    }
    const q = quantizeRtn(w, 2, k, rtn(2, 16));
    expect(Array.from(q.scales)).toEqual([1, 2, 3, 1]);
    expect(Array.from(q.zeros!)).toEqual([1, 1, 1, 3]);
    expect(Array.from(dequantize(q))).toEqual(Array.from(w));
  });

  it("dequantizes to s · (q − z)", () => {
    const q = quantizeRtn(Float32Array.from([-2.5, 0, 12.5, 3.5]), 1, 4, rtn(4));
    expect(Array.from(dequantize(q))).toEqual([-2, 0, 12, 4]);
  });
});

describe("zero points of 0 (unsafe in GPTQ v1)", () => {
  it("widens the group to s = max/(2^b − 2), z = 1 instead, without clipping", () => {
    const row = Float32Array.from([3, 3, 3, 3]); // constant positive row: lo = 0 → z would be 0
    const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
    const q = quantizeRtn(row, 1, 4, rtn(4), { stats });
    expect(stats).toEqual({ groups: 1, zeroPointsAtZero: 1 });
    expect(q.zeros![0]).toBe(1);
    expect(q.scales[0]).toBe(Math.fround(3 / 14));
    expect(Array.from(q.codes)).toEqual([15, 15, 15, 15]);
    for (const v of dequantize(q)) expect(v).toBeCloseTo(3, 6);
  });

  it("keeps z = 0 with v1SafeZeros false (the pure formula)", () => {
    // s = 7.2/15 = 0.48, −lo/s = 0.2/0.48 ≈ 0.42 → z = 0
    const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
    const q = quantizeRtn(Float32Array.from([-0.2, 7, 7, 3.5]), 1, 4, rtn(4), { v1SafeZeros: false, stats });
    expect(stats.zeroPointsAtZero).toBe(1);
    expect(q.zeros![0]).toBe(0);
    expect(q.scales[0]).toBe(Math.fround(Math.fround(7.2) / 15));
    expect(Array.from(q.codes)).toEqual([0, 15, 15, 7]);
  });
});

/** The largest |w − ŵ| / s over all weights (s = the weight's group scale). */
function worstError(w: Float32Array, q: ReturnType<typeof quantizeRtn>): number {
  const wHat = dequantize(q);
  const k = q.inFeatures;
  const groups = k / q.groupSize;
  let worst = 0;
  for (let i = 0; i < w.length; i++) {
    const s = q.scales[Math.floor(i / k) * groups + Math.floor((i % k) / q.groupSize)]!;
    worst = Math.max(worst, Math.abs(w[i]! - wHat[i]!) / s);
  }
  return worst;
}

describe("ref-llama-5m", () => {
  let model: LlamaModel;
  let reference: { scales: Record<string, number[]> };
  beforeAll(() => {
    model = LlamaModel.load(refModelDir);
    reference = JSON.parse(fs.readFileSync(path.join(refModelDir, "reference.json"), "utf8")).rtn4_per_channel;
  });

  it("layer 0 q_proj scales equal reference.json rtn4_per_channel.scales (float32)", () => {
    const w = model.weights.get("model.layers.0.self_attn.q_proj.weight")!;
    const q = quantizeRtn(w.data, w.shape[0]!, w.shape[1]!, rtn(4));
    const want = reference.scales["model.layers.0.self_attn.q_proj"]!;
    expect(q.scales.length).toBe(want.length);
    let maxRel = 0;
    want.forEach((s, i) => (maxRel = Math.max(maxRel, Math.abs(q.scales[i]! - s) / s)));
    expect(maxRel).toBeLessThan(1e-7);
  });

  it.each([
    [4, "channel", false], [4, 64, false], [3, 32, false], [2, "channel", false], [8, 64, false], [4, "channel", true], [3, 64, true],
  ] as Array<[QuantBits, QuantSpec["groupSize"], boolean]>)("%i bits, group %s, sym %s: |w − ŵ| ≤ s/2 and no zero point is 0", (bits, g, sym) => {
    for (const name of ["model.layers.0.self_attn.q_proj.weight", "model.layers.5.mlp.down_proj.weight"]) {
      const w = model.weights.get(name)!;
      const [n, k] = w.shape as [number, number];
      const q = quantizeRtn(w.data, n, k, rtn(bits, g, sym));
      expect(worstError(w.data, q)).toBeLessThanOrEqual(0.5 + 1e-5);
      expect(q.zeros!.every((z) => z >= 1)).toBe(true);
    }
  });
});

describe("error bound on synthetic weights incl. widened groups", () => {
  it.each([2, 3, 4, 8] as QuantBits[])("%i bits, groups of 16, rows shifted positive", (bits) => {
    const n = 64;
    const k = 64;
    const w = gaussian(n * k, 7 + bits);
    for (let i = 0; i < w.length; i++) if (Math.floor(i / k) % 3 === 0) w[i] = w[i]! + 3; // mostly all-positive groups
    const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
    const q = quantizeRtn(w, n, k, rtn(bits, 16), { stats });
    expect(stats.groups).toBe(n * 4);
    expect(stats.zeroPointsAtZero).toBeGreaterThan(10);
    expect(q.zeros!.every((z) => z >= 1)).toBe(true);
    expect(worstError(w, q)).toBeLessThanOrEqual(0.5 + 1e-5);
  });
});

describe("argument errors", () => {
  const w = new Float32Array(4 * 96);
  it.each([
    ["bits 5", () => quantizeRtn(w, 4, 96, { ...rtn(4), bits: 5 as QuantBits }), "E_ARG", ["bits 5", "2, 3, 4 or 8"]],
    ["group size 48", () => quantizeRtn(w, 4, 96, rtn(4, 48)), "E_ARG", ["group size 48", "channel"]],
    ["group size not dividing K", () => quantizeRtn(w, 4, 96, rtn(4, 64), { layer: "model.layers.3.mlp.down_proj" }), "E_ARG", ["group size 64", "96 input columns (K)", "model.layers.3.mlp.down_proj", "use 32 or channel"]],
    ["nf4 spec", () => quantizeRtn(w, 4, 96, { scheme: "nf4", bits: 4, groupSize: 32, symmetric: true }), "E_ARG", ["quantizeNf4"]],
    ["wrong length", () => quantizeRtn(w, 5, 96, rtn(4)), "E_SHAPE", ["[5, 96]"]],
    ["NaN weight", () => quantizeRtn(Float32Array.from([0, NaN, 1, 2]), 1, 4, rtn(4), { layer: "L" }), "E_ARG", ["NaN", "L"]],
  ] as Array<[string, () => unknown, "E_ARG" | "E_SHAPE", string[]]>)("%s", (_label, fn, code, mentions) => {
    expectSlimtuneError(fn, code, ...mentions);
  });
});
