// The Gaussian process and expected improvement on known functions, and Bayesian optimisation of a
// known allocation objective under a budget (against brute force and against random search).

import { describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { type SearchSpace, bayesOpt, isMaximal } from "../../src/recipes/mixed-precision/bayes-opt.js";
import { GaussianProcess, cholesky, erfc, expectedImprovement, normalCdf } from "../../src/recipes/mixed-precision/gp.js";
import type { QuantBits } from "../../src/quant/types.js";

describe("Gaussian process", () => {
  const f = (x: number) => Math.sin(3 * x) + 0.5 * x;
  const xs = Array.from({ length: 9 }, (_, i) => i / 4); // 0 … 2
  const gp = GaussianProcess.fit(
    xs.map((x) => [x]),
    xs.map(f),
  );

  it("interpolates a smooth function: exact at the data, close between, uncertain far away", () => {
    for (const x of xs) {
      const p = gp.predict([x]);
      expect(Math.abs(p.mean - f(x))).toBeLessThan(1e-2);
      expect(p.std).toBeLessThan(0.05);
    }
    for (const x of [0.125, 0.875, 1.625]) expect(Math.abs(gp.predict([x]).mean - f(x))).toBeLessThan(0.08);
    expect(gp.predict([5]).std).toBeGreaterThan(5 * gp.predict([1.125]).std);
  });

  it("its Cholesky factor reproduces the matrix", () => {
    const A = Float64Array.from([4, 2, 0.4, 2, 5, 1, 0.4, 1, 3]);
    const L = cholesky(A, 3)!;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) expect([0, 1, 2].reduce((s, k) => s + L[i * 3 + k]! * L[j * 3 + k]!, 0)).toBeCloseTo(A[i * 3 + j]!, 12);
    expect(cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toBeNull();
  });

  it("normal CDF and erfc match known values", () => {
    expect(normalCdf(0)).toBeCloseTo(0.5, 7);
    expect(normalCdf(1.959963985)).toBeCloseTo(0.975, 6);
    expect(normalCdf(-1)).toBeCloseTo(0.158655254, 6);
    expect(erfc(0.5)).toBeCloseTo(0.479500122, 6);
  });

  it("expected improvement equals E[max(best − Y, 0)] by numerical integration", () => {
    for (const [mean, std, best] of [
      [0.2, 0.3, 0.1],
      [1, 0.05, 1.2],
      [-0.4, 1.5, 0],
    ] as const) {
      let integral = 0;
      const h = std / 400;
      for (let y = mean - 12 * std; y < mean + 12 * std; y += h) {
        const pdf = Math.exp(-0.5 * ((y - mean) / std) ** 2) / (std * Math.sqrt(2 * Math.PI));
        integral += Math.max(best - y, 0) * pdf * h;
      }
      expect(expectedImprovement({ mean, std }, best)).toBeCloseTo(integral, 5);
    }
    expect(expectedImprovement({ mean: 0.5, std: 0 }, 1)).toBe(0.5);
  });

  it("EI on the fitted GP points at the minimum of the function", () => {
    const best = Math.min(...xs.map(f));
    const grid = Array.from({ length: 201 }, (_, i) => i / 100);
    const argmax = grid.reduce((a, x) => (expectedImprovement(gp.predict([x]), best) > expectedImprovement(gp.predict([a]), best) ? x : a));
    const trueMin = grid.reduce((a, x) => (f(x) < f(a) ? x : a));
    expect(Math.abs(argmax - trueMin)).toBeLessThan(0.1);
  });
});

describe("Bayesian optimisation under a budget", () => {
  // A known objective: loss = Σ_u s_u · 4^−b_u, with the cost Σ_u n_u · b_u ≤ budget.
  const s = [3, 0.2, 1.5, 0.05, 0.8, 6, 0.4];
  const n = [1, 1, 2, 1, 2, 1, 1];
  const choices: QuantBits[] = [2, 3, 4, 8];
  const cost = (a: QuantBits[]) => a.reduce((t, b, u) => t + n[u]! * b, 0);
  const space: SearchSpace = { units: s.length, choices, fits: (a) => cost(a) <= 36 };
  const objective = (a: QuantBits[]) => a.reduce((t, b, u) => t + s[u]! * 4 ** -b, 0);
  const evaluate = async (allocs: readonly QuantBits[][]) => allocs.map(objective);

  let optimum = Infinity;
  const walk = (p: QuantBits[]) => {
    if (p.length === s.length) {
      if (space.fits(p)) optimum = Math.min(optimum, objective(p));
      return;
    }
    for (const b of choices) walk([...p, b]);
  };
  walk([]);

  it("gets within 10 % of the brute-force optimum in 20 trials, proposing only maximal allocations that fit", async () => {
    const start: QuantBits[] = [4, 4, 4, 4, 4, 4, 4]; // cost 36
    const r = await bayesOpt(space, evaluate, { trials: 20, batch: 2, starts: [start], randomStarts: 3, seed: 1 });
    expect(r.trials).toHaveLength(20);
    for (const t of r.trials) {
      expect(space.fits(t.bits)).toBe(true);
      if (t.origin !== "start") expect(isMaximal(space, t.bits)).toBe(true);
    }
    expect(r.best.loss).toBeLessThanOrEqual(optimum * 1.1);
    expect(new Set(r.trials.map((t) => t.bits.join())).size).toBe(20);
  });

  it("beats random search with the same number of evaluations (median over seeds)", async () => {
    const boBest: number[] = [];
    const randomBest: number[] = [];
    for (let seed = 0; seed < 5; seed++) {
      boBest.push((await bayesOpt(space, evaluate, { trials: 12, batch: 2, starts: [], randomStarts: 4, seed })).best.loss);
      const rng = new Rng(seed + 100);
      let best = Infinity;
      for (let i = 0; i < 12; ) {
        const a = Array.from({ length: s.length }, () => choices[rng.int(4)]!);
        if (!space.fits(a)) continue;
        best = Math.min(best, objective(a));
        i++;
      }
      randomBest.push(best);
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[2]!;
    expect(median(boBest)).toBeLessThan(median(randomBest));
  });

  it("uses the search space's search when it is too large to enumerate", async () => {
    const r = await bayesOpt(space, evaluate, { trials: 14, batch: 3, starts: [], randomStarts: 4, seed: 2, enumerateLimit: 10, candidates: 64 });
    expect(r.trials).toHaveLength(14);
    const initial = Math.min(...r.trials.filter((t) => t.round === 0).map((t) => t.loss));
    expect(r.best.origin).toBe("bo");
    expect(r.best.loss).toBeLessThan(initial);
    for (const t of r.trials) expect(space.fits(t.bits) && isMaximal(space, t.bits)).toBe(true);
  });
});
