// Tests for global-norm computation and clipping.

import { describe, expect, it } from "vitest";
import { clipByGlobalNorm, clipScale, globalNorm } from "../../src/train/clip.js";

const grads = () =>
  new Map([
    ["a", new Float32Array([3, 0])],
    ["b", new Float32Array([4])],
  ]);

describe("globalNorm", () => {
  it.each([
    [[], 0],
    [[new Float32Array([3, 4])], 5],
    [[new Float32Array([1]), new Float32Array([1, 1, 1])], 2],
  ])("of %j is %d", (gs, want) => {
    expect(globalNorm(gs)).toBeCloseTo(want, 12);
  });

  it("accumulates a million small squares without float32 drift", () => {
    const g = new Float32Array(1_000_000).fill(1e-3);
    expect(globalNorm([g])).toBeCloseTo(Math.sqrt(1e6) * Math.fround(1e-3), 9);
  });
});

describe("clipByGlobalNorm", () => {
  it.each([
    [10, [3, 0, 4]],
    [5, [3, 0, 4]],
    [0, [3, 0, 4]],
    [-1, [3, 0, 4]],
    [1, [0.6, 0, 0.8]],
    [2.5, [1.5, 0, 2]],
  ])("maxNorm %d → %j, returns the pre-clip norm", (maxNorm, want) => {
    const g = grads();
    expect(clipByGlobalNorm(g, maxNorm)).toBeCloseTo(5, 12);
    const got = [...g.get("a")!, ...g.get("b")!];
    want.forEach((w, i) => expect(got[i]).toBeCloseTo(w, 5));
  });

  it("leaves gradients alone when the norm is not finite", () => {
    const g = new Map([["a", new Float32Array([1, NaN])]]);
    expect(clipByGlobalNorm(g, 1)).toBeNaN();
    expect(g.get("a")![0]).toBe(1);
  });
});

describe("clipScale", () => {
  it.each([
    [5, 10, 1],
    [5, 5, 1],
    [5, 0, 1],
    [5, -1, 1],
    [5, 1, 1 / (5 + 1e-6)],
    [NaN, 1, 1],
    [Infinity, 1, 1],
  ])("norm %d, maxNorm %d → %d", (norm, maxNorm, want) => {
    expect(clipScale(norm, maxNorm)).toBe(want);
  });
});
