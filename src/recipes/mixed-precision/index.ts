// Mixed precision under a memory budget, end to end: the budget arithmetic (quant/budget.ts), the
// importance-based start (Fisher-weighted quantization error, quant/allocation.ts), and Bayesian
// optimisation of the held-out loss after a short LoRA recovery, with candidate evaluations spread
// over worker processes. Used by `quantize --budget-mb / --avg-bits` and by QPruner.

import path from "node:path";
import type { FloatWeights } from "../../arch/params.js";
import { writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { type LossSource, accumulateGradients } from "../../prune/gradients.js";
import { fisherSensitivity, greedyAllocation } from "../../quant/allocation.js";
import { type Allocation, type BaseSpec, type Budget, type BudgetModel, allocationAvgBits, allocationBytes, budgetModel, checkBudget, fitsBudget, uniformAllocation } from "../../quant/budget.js";
import type { QuantBits } from "../../quant/types.js";
import { type Trial, bayesOpt } from "./bayes-opt.js";
import { type ParetoPoint, paretoFront, paretoSvg } from "./pareto.js";
import type { RecoverySettings, TrialOutcome, TrialSetup } from "./trial.js";
import { type TrialEvaluator, sequentialEvaluator, workerPool } from "./workers.js";

export const allocationModes = ["uniform", "importance", "bo"] as const;
export type AllocationMode = (typeof allocationModes)[number];

export interface MixedPrecisionOptions {
  budget: Budget;
  base: BaseSpec;
  choices: QuantBits[];
  mode: AllocationMode;
  /** Data the Fisher information (the importance start) is measured on. */
  source?: LossSource;
  samples: number;
  seed: number;
  threads?: number;
  /** BO: evaluations, proposals per round, random allocations in the initial design. */
  trials: number;
  roundSize: number;
  randomStarts: number;
  /** BO: worker processes (one ORT thread each); 0 evaluates in this process, one thread. */
  workers: number;
  /** BO: also evaluate every uniform allocation (over budget too), as references for the front. */
  referenceUniform: boolean;
  /** BO: the model folder, task and data each trial recovers on. */
  trial?: { modelDir: string; task: "lm" | "classify"; dataFile: string; numLabels?: number; head?: Float32Array; recovery: RecoverySettings };
  onStage?: (stage: string) => void;
  onTrial?: (t: EvaluatedTrial, best: EvaluatedTrial, done: number, total: number) => void;
}

export interface EvaluatedTrial extends Omit<TrialOutcome, "bits"> {
  index: number;
  round: number;
  bits: Allocation;
  origin: Trial["origin"] | "uniform";
  fits: boolean;
  ei?: number;
}

export interface MixedPrecisionResult {
  mode: AllocationMode;
  budget: Budget;
  units: string[];
  choices: QuantBits[];
  allocation: Allocation;
  bytes: number;
  avgBits: number;
  /** The importance-based start and each unit's estimated loss increase per choice. */
  start: Allocation | null;
  sensitivity: number[][] | null;
  trials: EvaluatedTrial[];
  /** Indices into `trials` of the Pareto front (bytes vs held-out loss). */
  front: number[];
  /** The best trial, when BO ran. */
  best: EvaluatedTrial | null;
  budgetModel: BudgetModel;
}

/** The widest uniform allocation that fits the budget. */
export function widestUniform(bm: BudgetModel, budget: Budget): Allocation {
  for (const b of [...bm.choices].reverse()) if (fitsBudget(bm, budget, uniformAllocation(bm, b))) return uniformAllocation(bm, b);
  throw new SlimtuneError("E_ARG", "no uniform allocation fits the budget");
}

export async function allocateBits(model: FloatWeights, opts: MixedPrecisionOptions): Promise<MixedPrecisionResult> {
  const bm = budgetModel(model, opts.base, opts.choices);
  checkBudget(bm, opts.budget);
  const done = (allocation: Allocation, extra: Partial<MixedPrecisionResult> = {}): MixedPrecisionResult => ({
    mode: opts.mode,
    budget: opts.budget,
    units: bm.units.map((u) => u.name),
    choices: bm.choices,
    allocation,
    bytes: allocationBytes(bm, allocation),
    avgBits: allocationAvgBits(bm, allocation),
    start: null,
    sensitivity: null,
    trials: [],
    front: [],
    best: null,
    budgetModel: bm,
    ...extra,
  });
  if (opts.mode === "uniform") return done(widestUniform(bm, opts.budget));

  if (!opts.source) throw new SlimtuneError("E_ARG", "mixed precision needs task data for the importance start; pass --data");
  opts.onStage?.("importance: Fisher information of the task loss");
  const grads = await accumulateGradients(model, opts.source, { samples: opts.samples, seed: opts.seed, threads: opts.threads, fisher: true });
  const sensitivity = fisherSensitivity(model, bm, grads.meanSquare!);
  const start = greedyAllocation(bm, opts.budget, sensitivity);
  if (opts.mode === "importance") return done(start, { start, sensitivity });

  if (!opts.trial) throw new SlimtuneError("E_ARG", "Bayesian optimisation needs the trial setup (model folder, task data)");
  if (!(Number.isInteger(opts.trials) && opts.trials >= 1)) throw new SlimtuneError("E_ARG", `--trials ${opts.trials} must be a positive integer`);
  const { head, ...trial } = opts.trial;
  const setup: TrialSetup = { ...trial, ...(head ? { head: Array.from(head) } : {}), base: opts.base, choices: bm.choices, threads: 1 };
  opts.onStage?.(opts.workers > 0 ? `Bayesian optimisation: ${opts.trials} trials on ${opts.workers} worker processes` : `Bayesian optimisation: ${opts.trials} trials in this process`);
  const evaluator: TrialEvaluator = opts.workers > 0 ? await workerPool(setup, opts.workers) : await sequentialEvaluator(setup);
  const evaluated: EvaluatedTrial[] = [];
  const outcomes = new Map<string, TrialOutcome>();
  try {
    if (opts.referenceUniform) {
      const uniforms = bm.choices.map((b) => uniformAllocation(bm, b));
      const results = await evaluator.evaluate(uniforms);
      results.forEach((o) => {
        const t: EvaluatedTrial = { ...o, index: evaluated.length, round: -1, origin: "uniform", fits: fitsBudget(bm, opts.budget, o.bits) };
        evaluated.push(t);
        opts.onTrial?.(t, t, evaluated.length, opts.trials + uniforms.length);
      });
    }
    const space = { units: bm.units.length, choices: bm.choices, fits: (a: Allocation) => fitsBudget(bm, opts.budget, a) };
    const evaluate = async (allocs: readonly Allocation[]) => {
      const results = await evaluator.evaluate(allocs);
      results.forEach((o) => outcomes.set(o.bits.join(","), o));
      return results.map((o) => o.loss);
    };
    let reported = 0;
    await bayesOpt(space, evaluate, { trials: opts.trials, batch: opts.roundSize, starts: [start], randomStarts: opts.randomStarts, seed: opts.seed }, (trials) => {
      for (; reported < trials.length; reported++) {
        const t = trials[reported]!;
        const e: EvaluatedTrial = { ...outcomes.get(t.bits.join(","))!, index: evaluated.length, round: t.round, origin: t.origin, fits: true, ...(t.ei !== undefined ? { ei: t.ei } : {}) };
        evaluated.push(e);
        const best = evaluated.filter((x) => x.origin !== "uniform" || x.fits).reduce((a, b) => (b.loss < a.loss ? b : a));
        opts.onTrial?.(e, best, evaluated.length, opts.trials + (opts.referenceUniform ? bm.choices.length : 0));
      }
    });
  } finally {
    await evaluator.close();
  }
  const eligible = evaluated.filter((t) => t.fits);
  const best = eligible.reduce((a, b) => (b.loss < a.loss ? b : a));
  return done(best.bits, { start, sensitivity, trials: evaluated, best, front: paretoFront(evaluated.map(paretoPointOf)) });
}

const paretoPointOf = (t: EvaluatedTrial): ParetoPoint => ({
  bytes: t.bytes,
  loss: t.loss,
  origin: t.origin,
  label: t.origin === "uniform" ? `uniform ${t.bits[0]}-bit` : `trial ${t.index}: ${t.bits.join(",")}`,
});

/** The result as the JSON written beside the model (snake_case at the boundary). */
export function mixedPrecisionJson(r: MixedPrecisionResult): Record<string, unknown> {
  return {
    mode: r.mode,
    budget: r.budget.kind === "bytes" ? { bytes: r.budget.limit } : { avg_bits: r.budget.limit },
    base_spec: r.budgetModel.base,
    units: r.units,
    choices: r.choices,
    allocation: r.allocation,
    bytes: r.bytes,
    avg_bits: r.avgBits,
    importance: "fisher-weighted quantization error ½ Σ F·(w − Q_b(w))², F the mean squared per-batch gradient of the task loss",
    start: r.start,
    sensitivity: r.sensitivity,
    trials: r.trials.map((t) => ({
      index: t.index,
      round: t.round,
      origin: t.origin,
      bits: t.bits,
      bytes: t.bytes,
      avg_bits: t.avgBits,
      fits_budget: t.fits,
      loss_before_recovery: t.lossBefore,
      loss: t.loss,
      metrics: t.metrics,
      ...(t.ei !== undefined ? { expected_improvement: t.ei } : {}),
      seconds: t.seconds,
    })),
    best_trial: r.best?.index ?? null,
    pareto_front: r.front,
  };
}

/** Writes mixed-precision.json and, when trials ran, pareto.json and pareto.svg into `dir` (each atomically). */
export function writeMixedPrecisionReport(dir: string, r: MixedPrecisionResult, title: string): string[] {
  writeFileAtomic(path.join(dir, "mixed-precision.json"), `${JSON.stringify(mixedPrecisionJson(r), null, 1)}\n`);
  if (r.trials.length === 0) return ["mixed-precision.json"];
  const points = r.trials.map(paretoPointOf);
  const front = r.front.map((i) => ({ index: i, bits: r.trials[i]!.bits, bytes: r.trials[i]!.bytes, loss: r.trials[i]!.loss, origin: r.trials[i]!.origin }));
  writeFileAtomic(path.join(dir, "pareto.json"), `${JSON.stringify({ objective: "held-out loss after the LoRA recovery of each trial", budget_bytes: r.budget.kind === "bytes" ? r.budget.limit : null, front, points: points.map((p, i) => ({ index: i, ...p })) }, null, 1)}\n`);
  writeFileAtomic(path.join(dir, "pareto.svg"), paretoSvg(points, { title, budgetBytes: r.budget.kind === "bytes" ? r.budget.limit : undefined }));
  return ["mixed-precision.json", "pareto.json", "pareto.svg"];
}
