// The divergence rule (train/divergence.ts) on loss sequences of the kinds it must and must not stop.

import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { DivergenceMonitor } from "../../src/train/divergence.js";

const lnVocab = Math.log(4096);

function run(losses: number[], uniform: number | null = lnVocab): { stoppedAt: number | null; message: string; skipped: number } {
  const m = new DivergenceMonitor(uniform);
  for (let i = 0; i < losses.length; i++) {
    const loss = losses[i]!;
    try {
      m.observe(i + 1, loss, Number.isFinite(loss));
    } catch (e) {
      expect(e).toBeInstanceOf(SlimtuneError);
      expect((e as SlimtuneError).code).toBe("E_DIVERGED");
      return { stoppedAt: i + 1, message: (e as Error).message, skipped: m.skipped };
    }
  }
  return { stoppedAt: null, message: "", skipped: m.skipped };
}

// A healthy run: falling loss with batch noise of ±0.3.
const healthy = Array.from({ length: 200 }, (_, i) => 6.6 - 1.5 * (1 - Math.exp(-i / 40)) + 0.3 * Math.sin(i * 1.7));

describe("DivergenceMonitor", () => {
  it("lets a healthy run and a noisy flat one run to the end", () => {
    expect(run(healthy).stoppedAt).toBeNull();
    expect(run(Array.from({ length: 100 }, (_, i) => 6.6 + 0.5 * Math.sin(i))).stoppedAt).toBeNull();
  });

  it("lets a classifier sit at chance (no uniform rule for classification)", () => {
    expect(run(Array.from({ length: 100 }, () => Math.log(2)), null).stoppedAt).toBeNull();
  });

  it("stops a run that collapsed to predicting every token alike (what --lr 1e3 did)", () => {
    const r = run([6.63, 13.8, 9.1, ...Array.from({ length: 30 }, () => 8.3178)]);
    expect(r.stoppedAt).toBe(10);
    expect(r.message).toMatch(/training diverged at step 10/);
    expect(r.message).toMatch(/lower --lr/);
  });

  it("stops at the uniform loss even without a blow-up on the way", () => {
    const r = run([6.63, ...Array.from({ length: 30 }, () => lnVocab - 0.05)]);
    expect(r.stoppedAt).toBe(10);
    expect(r.message).toMatch(/predicting every token alike \(ln 4096 = 8\.3178\)/);
  });

  it("stops a run whose loss grew past its start by the margin", () => {
    const r = run([2.0, ...Array.from({ length: 30 }, (_, i) => 2.0 + 0.2 * i)], null);
    expect(r.stoppedAt).not.toBeNull();
    expect(r.message).toMatch(/above 3\.0000 \(the start 2\.0000/);
  });

  it("skips isolated non-finite steps, counts them, and stops at three in a row", () => {
    const isolated = run([6.6, NaN, 6.5, Infinity, 6.4, 6.3, NaN, 6.2]);
    expect(isolated).toMatchObject({ stoppedAt: null, skipped: 3 });
    const inARow = run([6.6, 6.5, NaN, NaN, NaN, 6.4]);
    expect(inARow.stoppedAt).toBe(5);
    expect(inARow.message).toMatch(/3 steps in a row had a non-finite loss/);
  });
});
