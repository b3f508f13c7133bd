// Bayesian optimisation over bit allocations under a hard budget: a Gaussian-process surrogate of
// the objective (held-out loss after a short recovery), expected improvement as the acquisition,
// and only allocations that meet the budget ever proposed.
//
// - Search space: one bit width per unit from the allowed choices, restricted to *maximal*
//   allocations (no unit can be widened without breaking the budget): more bits never hurts in
//   expectation, so the optimum is maximal, and every proposal spends the budget.
// - Encoding for the kernel: a unit at b bits is 4·2^−b (1, ½, ¼, 1/64 for 2, 3, 4, 8 bits), the
//   relative size of its quantization step, so 2 → 3 bits is a larger move than 4 → 8.
// - Rounds of `batch` proposals: the first by EI; each next one after adding the previous with its
//   predicted mean as if observed (the "kriging believer"). The proposals of a round do not depend
//   on how they are evaluated, so evaluating them in parallel gives the same run as one by one.
// - Candidates: every maximal allocation when there are at most `enumerateLimit` allocations;
//   otherwise seeded random maximal allocations plus one-step moves around the best observed.

import { Rng } from "../../core/rng.js";
import type { Allocation } from "../../quant/budget.js";
import type { QuantBits } from "../../quant/types.js";
import { GaussianProcess, expectedImprovement } from "./gp.js";

export interface SearchSpace {
  units: number;
  choices: readonly QuantBits[];
  fits(alloc: Allocation): boolean;
}

export interface Trial {
  index: number;
  /** 0 for the initial design, then 1, 2, … */
  round: number;
  bits: Allocation;
  loss: number;
  origin: "start" | "random" | "bo";
  /** Expected improvement when proposed (bo trials). */
  ei?: number;
}

export interface BoOptions {
  /** Evaluations in total, initial design included. */
  trials: number;
  /** Proposals per round (evaluated together, in parallel if the evaluator can). */
  batch: number;
  /** Allocations evaluated first (e.g. the importance-based start); must fit. */
  starts: Allocation[];
  /** Seeded random maximal allocations added to the initial design. */
  randomStarts: number;
  seed: number;
  /** Random candidates per proposal when the space is too large to enumerate. */
  candidates?: number;
  enumerateLimit?: number;
}

/** Evaluates a round's allocations; returns their losses in order. */
export type Evaluator = (allocs: readonly Allocation[]) => Promise<number[]>;

export const encodeAllocation = (alloc: Allocation): number[] => alloc.map((b) => 4 * 2 ** -b);
const key = (a: Allocation) => a.join(",");

/** True when no unit can move to the next wider choice and still fit. */
export function isMaximal(space: SearchSpace, alloc: Allocation): boolean {
  for (let u = 0; u < alloc.length; u++) {
    const next = space.choices.find((b) => b > alloc[u]!);
    if (next !== undefined && space.fits(alloc.map((b, j) => (j === u ? next : b)))) return false;
  }
  return true;
}

/** Widens units (in a seeded random order, one step at a time) until the allocation is maximal. */
export function fillToMaximal(space: SearchSpace, alloc: Allocation, rng: Rng): Allocation {
  const a = [...alloc];
  for (;;) {
    const options: number[] = [];
    for (let u = 0; u < a.length; u++) {
      const next = space.choices.find((b) => b > a[u]!);
      if (next !== undefined && space.fits(a.map((b, j) => (j === u ? next : b)))) options.push(u);
    }
    if (options.length === 0) return a;
    const u = options[rng.int(options.length)]!;
    a[u] = space.choices.find((b) => b > a[u]!)!;
  }
}

function randomMaximal(space: SearchSpace, rng: Rng): Allocation | null {
  for (let attempt = 0; attempt < 50; attempt++) {
    const a = Array.from({ length: space.units }, () => space.choices[rng.int(space.choices.length)]!);
    // Narrow random units until it fits, then widen to maximal.
    for (let guard = 0; !space.fits(a) && guard < 10_000; guard++) {
      const u = rng.int(a.length);
      const i = space.choices.indexOf(a[u]!);
      if (i > 0) a[u] = space.choices[i - 1]!;
    }
    if (space.fits(a)) return fillToMaximal(space, a, rng);
  }
  return null;
}

function allMaximal(space: SearchSpace): Allocation[] {
  const out: Allocation[] = [];
  const walk = (prefix: QuantBits[]) => {
    if (prefix.length === space.units) {
      if (space.fits(prefix) && isMaximal(space, prefix)) out.push([...prefix]);
      return;
    }
    for (const b of space.choices) walk([...prefix, b]);
  };
  walk([]);
  return out;
}

/** One-step moves (widen one unit, narrow another) around `a`, made maximal. */
function neighbours(space: SearchSpace, a: Allocation, rng: Rng): Allocation[] {
  const out: Allocation[] = [];
  const C = space.choices;
  for (let u = 0; u < a.length; u++) {
    for (let v = 0; v < a.length; v++) {
      if (u === v) continue;
      const iu = C.indexOf(a[u]!);
      const iv = C.indexOf(a[v]!);
      if (iu + 1 >= C.length || iv === 0) continue;
      const b = [...a];
      b[u] = C[iu + 1]!;
      b[v] = C[iv - 1]!;
      for (let guard = 0; !space.fits(b) && guard < a.length; guard++) {
        const w = rng.int(a.length);
        const iw = C.indexOf(b[w]!);
        if (w !== u && iw > 0) b[w] = C[iw - 1]!;
      }
      if (space.fits(b)) out.push(fillToMaximal(space, b, rng));
    }
  }
  return out;
}

export interface BoResult {
  trials: Trial[];
  best: Trial;
}

export async function bayesOpt(space: SearchSpace, evaluate: Evaluator, opts: BoOptions, onRound?: (trials: readonly Trial[]) => void): Promise<BoResult> {
  if (!(Number.isInteger(opts.trials) && opts.trials >= 1)) throw new Error(`bayesOpt: trials ${opts.trials} must be a positive integer`);
  const rng = new Rng(opts.seed);
  const trials: Trial[] = [];
  const seen = new Set<string>();
  const run = async (round: number, proposals: Array<{ bits: Allocation; origin: Trial["origin"]; ei?: number }>) => {
    const losses = await evaluate(proposals.map((p) => p.bits));
    proposals.forEach((p, i) => trials.push({ index: trials.length, round, bits: p.bits, loss: losses[i]!, origin: p.origin, ...(p.ei !== undefined ? { ei: p.ei } : {}) }));
    onRound?.(trials);
  };

  // Initial design: the given starts, then random maximal allocations.
  const initial: Array<{ bits: Allocation; origin: Trial["origin"] }> = [];
  for (const s of opts.starts) {
    if (!space.fits(s)) throw new Error(`bayesOpt: start ${key(s)} does not meet the budget`);
    if (!seen.has(key(s)) && initial.length < opts.trials) {
      seen.add(key(s));
      initial.push({ bits: [...s], origin: "start" });
    }
  }
  const initialCount = Math.min(opts.trials, initial.length + opts.randomStarts);
  for (let attempt = 0; attempt < 20 * opts.randomStarts && initial.length < initialCount; attempt++) {
    const a = randomMaximal(space, rng);
    if (a && !seen.has(key(a))) {
      seen.add(key(a));
      initial.push({ bits: a, origin: "random" });
    }
  }
  for (let i = 0; i < initial.length; i += opts.batch) await run(0, initial.slice(i, i + opts.batch));

  const limit = opts.enumerateLimit ?? 20_000;
  const enumerable = space.choices.length ** space.units <= limit ? allMaximal(space) : null;
  for (let round = 1; trials.length < opts.trials; round++) {
    const X = trials.map((t) => encodeAllocation(t.bits));
    const y = trials.map((t) => t.loss);
    let gp = GaussianProcess.fit(X, y);
    const best = Math.min(...y);
    const proposals: Array<{ bits: Allocation; origin: "bo"; ei: number }> = [];
    const want = Math.min(opts.batch, opts.trials - trials.length);
    for (let q = 0; q < want; q++) {
      const pool = enumerable ?? candidatePool(space, trials, rng, opts.candidates ?? 512);
      let pick: { bits: Allocation; ei: number } | null = null;
      for (const c of pool) {
        if (seen.has(key(c))) continue;
        const ei = expectedImprovement(gp.predict(encodeAllocation(c)), best);
        if (!pick || ei > pick.ei) pick = { bits: c, ei };
      }
      if (!pick) break;
      seen.add(key(pick.bits));
      proposals.push({ bits: pick.bits, origin: "bo", ei: pick.ei });
      X.push(encodeAllocation(pick.bits));
      y.push(gp.predict(encodeAllocation(pick.bits)).mean);
      gp = gp.refit(X, y);
    }
    if (proposals.length === 0) break; // every maximal allocation has been evaluated
    await run(round, proposals);
  }
  const bestTrial = trials.reduce((a, b) => (b.loss < a.loss ? b : a));
  return { trials, best: bestTrial };
}

function candidatePool(space: SearchSpace, trials: readonly Trial[], rng: Rng, count: number): Allocation[] {
  const pool: Allocation[] = [];
  const top = [...trials].sort((a, b) => a.loss - b.loss).slice(0, 5);
  for (const t of top) pool.push(...neighbours(space, t.bits, rng));
  for (let i = 0; i < count; i++) {
    const a = randomMaximal(space, rng);
    if (a) pool.push(a);
  }
  return pool;
}
