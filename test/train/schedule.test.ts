// Tests for the warm-up + cosine learning-rate schedule.

import { describe, expect, it } from "vitest";
import { learningRateAt } from "../../src/train/schedule.js";

describe("learningRateAt", () => {
  const o = { peak: 1e-3, warmupSteps: 10, totalSteps: 110 };

  it.each([
    [0, 1e-4],
    [4, 5e-4],
    [9, 1e-3],
    [10, 1e-3],
    [60, 1e-4 + 0.5 * 9e-4],
    [110, 1e-4],
    [500, 1e-4],
  ])("step %d → %d", (step, want) => {
    expect(learningRateAt(step, o)).toBeCloseTo(want, 12);
  });

  it("decays monotonically after warm-up", () => {
    let prev = Infinity;
    for (let s = 10; s <= 110; s++) {
      const lr = learningRateAt(s, o);
      expect(lr).toBeLessThanOrEqual(prev);
      prev = lr;
    }
  });

  it.each([
    [0, 1],
    [50, 0.5],
    [100, 0],
  ])("no warm-up, minRatio 0: step %d → %d × peak", (step, frac) => {
    expect(learningRateAt(step, { peak: 2, warmupSteps: 0, totalSteps: 100, minRatio: 0 })).toBeCloseTo(2 * frac, 12);
  });

  it("warm-up over all steps ends at the peak, then holds the minimum", () => {
    const w = { peak: 1, warmupSteps: 5, totalSteps: 5 };
    expect(learningRateAt(4, w)).toBe(1);
    expect(learningRateAt(5, w)).toBeCloseTo(0.1, 12);
  });

  it.each([
    { peak: -1, warmupSteps: 0, totalSteps: 10 },
    { peak: NaN, warmupSteps: 0, totalSteps: 10 },
    { peak: 1, warmupSteps: 11, totalSteps: 10 },
    { peak: 1, warmupSteps: -1, totalSteps: 10 },
    { peak: 1, warmupSteps: 0, totalSteps: 10, minRatio: 1.5 },
  ])("rejects %j with E_ARG", (bad) => {
    expect(() => learningRateAt(0, bad)).toThrow(expect.objectContaining({ code: "E_ARG" }));
  });
});
