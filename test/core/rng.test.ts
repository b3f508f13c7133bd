// Tests for the seeded PRNG: reference outputs, determinism, state round-trip, distributions.

import { describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";

describe("Rng", () => {
  it("matches the xoshiro128** reference stream for state [1, 2, 3, 4]", () => {
    const rng = Rng.fromState([1, 2, 3, 4]);
    const out = Array.from({ length: 6 }, () => rng.nextU32());
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it.each([0, 1, 42, -7, 2 ** 40 + 3])("seed %d is deterministic", (seed) => {
    const a = new Rng(seed);
    const b = new Rng(seed);
    for (let i = 0; i < 100; i++) expect(a.nextU32()).toBe(b.nextU32());
  });

  it("different seeds give different streams", () => {
    const firsts = new Set([0, 1, 2, 3, 2 ** 32, 2 ** 33].map((s) => new Rng(s).nextU32()));
    expect(firsts.size).toBe(6);
  });

  it("resumes identically from JSON state", () => {
    const a = new Rng(123);
    for (let i = 0; i < 37; i++) a.normal();
    const b = Rng.fromState(JSON.parse(JSON.stringify(a.getState())) as number[]);
    const fa = new Float32Array(11);
    const fb = new Float32Array(11);
    a.fillNormal(fa, 0.02);
    b.fillNormal(fb, 0.02);
    expect(fb).toEqual(fa);
    expect(b.int(1000)).toBe(a.int(1000));
    expect(b.uniform()).toBe(a.uniform());
    expect(b.getState()).toEqual(a.getState());
  });

  it.each([[[1, 2, 3]], [[0, 0, 0, 0]], [[1, 2, 3, -1]], [[1, 2, 3, 2 ** 32]], [[1.5, 2, 3, 4]]])(
    "rejects bad state %j",
    (s) => {
      expect(() => Rng.fromState(s)).toThrow(expect.objectContaining({ code: "E_CHECKPOINT" }));
    },
  );

  it("uniform stays in [0, 1) with mean near 1/2", () => {
    const rng = new Rng(5);
    let sum = 0;
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const u = rng.uniform();
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
    }
    expect(outside).toBe(0);
    expect(sum / 100_000).toBeCloseTo(0.5, 2);
  });

  it.each([1, 2, 3, 7, 1000, 2 ** 31 + 1, 2 ** 32])("int(%d) stays in range", (n) => {
    const rng = new Rng(9);
    for (let i = 0; i < 2000; i++) {
      const k = rng.int(n);
      expect(Number.isInteger(k) && k >= 0 && k < n).toBe(true);
    }
  });

  it("int(6) is roughly uniform", () => {
    const rng = new Rng(11);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[rng.int(6)]!++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400);
  });

  it.each([0, -1, 1.5, 2 ** 32 + 1])("int(%d) throws E_ARG", (n) => {
    expect(() => new Rng(1).int(n)).toThrow(expect.objectContaining({ code: "E_ARG" }));
  });

  it.each([[1], [2], [1001], [100_000]])("fillNormal of length %d has the requested std", (n) => {
    const rng = new Rng(3);
    const out = new Float32Array(n);
    rng.fillNormal(out, 0.5);
    expect(out.every(Number.isFinite)).toBe(true);
    if (n >= 1000) {
      let s = 0;
      let s2 = 0;
      for (const x of out) {
        s += x;
        s2 += x * x;
      }
      const mean = s / n;
      expect(Math.abs(mean)).toBeLessThan(0.05);
      expect(Math.sqrt(s2 / n - mean * mean)).toBeCloseTo(0.5, 1);
    }
  });

  it("normal() has mean 0 and variance 1", () => {
    const rng = new Rng(8);
    let s = 0;
    let s2 = 0;
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      const x = rng.normal();
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(s2 / n).toBeCloseTo(1, 1);
  });

  it.each([1.5, NaN, Infinity])("seed %d throws E_ARG", (seed) => {
    expect(() => new Rng(seed)).toThrow(expect.objectContaining({ code: "E_ARG" }));
  });
});
