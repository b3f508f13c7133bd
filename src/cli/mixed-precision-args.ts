// The flags of mixed precision under a memory budget, shared by `quantize --budget-mb/--avg-bits`
// and `qpruner`: parsing them, running the allocation with progress on stderr, and describing the
// result.

import os from "node:os";
import { SlimtuneError } from "../core/errors.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import type { LlamaModel } from "../models/llama/model.js";
import { parseTask, taskSource } from "../prune/task-source.js";
import { type BaseSpec, type Budget, budgetModel, checkBudget, parseBitChoices } from "../quant/budget.js";
import { type AllocationMode, type EvaluatedTrial, type MixedPrecisionResult, allocateBits, allocationModes } from "../recipes/mixed-precision/index.js";
import { type RecoverySettings, defaultRecovery } from "../recipes/mixed-precision/trial.js";
import { floatArg, intArg } from "./args.js";

const r = defaultRecovery;

export const mixedPrecisionArgs = {
  "budget-mb": { type: "string", description: "Memory budget in MB (10^6 bytes) for everything stored: codes, scales, zeros, float embeddings, norms, head; per-layer bits are chosen from --bit-widths" },
  "avg-bits": { type: "string", description: "Instead of --budget-mb: mean code bits per quantized weight, e.g. 3.5" },
  "bit-widths": { type: "string", description: "Bit widths a layer may get, comma-separated (any of 2,3,4,8)", default: "2,3,4,8" },
  allocation: { type: "string", description: "How per-layer bits are chosen: uniform (widest that fits), importance (Fisher-weighted quantization error, greedy), bo (Bayesian optimisation from the importance start; default when --trials > 0)" },
  data: { type: "string", description: "Task data for importance and the trials' recovery: a text file (lm) or a labelled TSV (classify)" },
  task: { type: "string", description: "lm or classify", default: "lm" },
  "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
  samples: { type: "string", description: "Batches whose gradients give the importance (Fisher information)", default: "8" },
  trials: { type: "string", description: "BO: allocations evaluated (each: quantize, --recovery-steps of LoRA, held-out loss)" },
  "round-size": { type: "string", description: "BO: proposals per round, evaluated in parallel (results do not depend on --workers)", default: "2" },
  "random-starts": { type: "string", description: "BO: random allocations in the initial design besides the importance start", default: "2" },
  workers: { type: "string", description: "BO: worker processes, one ORT thread each (default: one per core; 0 evaluates in this process)" },
  "recovery-steps": { type: "string", description: "BO: LoRA steps per trial (K)", default: String(r.steps) },
  "recovery-lr": { type: "string", description: "BO: LoRA learning rate of the trials", default: String(r.lr) },
  rank: { type: "string", description: "LoRA rank", default: String(r.rank) },
  alpha: { type: "string", description: "LoRA alpha", default: String(r.alpha) },
  batch: { type: "string", description: "Sequences or examples per batch (importance and recovery)", default: String(r.batch) },
  seq: { type: "string", description: "lm: tokens per sequence", default: String(r.seq) },
  "max-len": { type: "string", description: "classify: tokens kept per example", default: String(r.maxLen) },
  "held-out": { type: "string", description: "Fraction of --data held out for the trials' objective", default: String(r.heldOut) },
  "reference-uniform": { type: "boolean", description: "BO: also evaluate every uniform allocation (references on the Pareto plot; not counted in --trials)" },
  seed: { type: "string", description: "Seed of sampling, initialisation and the search", default: "0" },
} as const;

type Args = { [K in keyof typeof mixedPrecisionArgs]?: string | boolean } & { threads?: string };

const str = (v: string | boolean | undefined) => (typeof v === "string" ? v : undefined);

/** The budget the flags ask for, or null when neither --budget-mb nor --avg-bits is given. */
export function parseBudget(args: Args): Budget | null {
  const mb = str(args["budget-mb"]);
  const avg = str(args["avg-bits"]);
  if (mb !== undefined && avg !== undefined) throw new SlimtuneError("E_ARG", "pass either --budget-mb or --avg-bits, not both");
  if (mb !== undefined) {
    const v = Number(mb);
    if (!(v > 0)) throw new SlimtuneError("E_ARG", `--budget-mb "${mb}" must be a positive number of MB (10^6 bytes), e.g. --budget-mb 3.2`);
    return { kind: "bytes", limit: v * 1e6 };
  }
  if (avg !== undefined) {
    const v = Number(avg);
    if (!Number.isFinite(v)) throw new SlimtuneError("E_ARG", `--avg-bits "${avg}" must be a number, e.g. --avg-bits 3.5`);
    return { kind: "avg-bits", limit: v };
  }
  return null;
}

export function parseRecovery(args: Args): RecoverySettings {
  return {
    ...r,
    steps: intArg("recovery-steps", str(args["recovery-steps"]), r.steps),
    lr: floatArg("recovery-lr", str(args["recovery-lr"]), r.lr),
    rank: intArg("rank", str(args.rank), r.rank),
    alpha: floatArg("alpha", str(args.alpha), r.alpha),
    batch: intArg("batch", str(args.batch), r.batch),
    seq: intArg("seq", str(args.seq), r.seq, 2),
    maxLen: intArg("max-len", str(args["max-len"]), r.maxLen, 2),
    heldOut: floatArg("held-out", str(args["held-out"]), r.heldOut),
    seed: intArg("seed", str(args.seed), 0, 0),
  };
}

function describeTrial(t: EvaluatedTrial, best: EvaluatedTrial, done: number, total: number): string {
  const what = t.origin === "uniform" ? "uniform reference" : t.origin === "bo" ? `bo round ${t.round}` : t.origin;
  return `trial ${done}/${total} (${what}): bits ${t.bits.join(",")} · ${(t.bytes / 1e6).toFixed(3)} MB · ${t.avgBits.toFixed(2)} bits/weight · loss ${t.loss.toFixed(4)} (before recovery ${t.lossBefore.toFixed(4)})${t.fits ? "" : " · over budget"} · best so far ${best.loss.toFixed(4)}\n`;
}

/** The allocation settings the flags ask for (everything but the data source and the trial folder). */
export function parseMixedOptions(args: Args, budget: Budget, base: BaseSpec, defaults: { trials: number }) {
  const choices = parseBitChoices(String(args["bit-widths"] ?? "2,3,4,8").split(",").map((s) => Number(s.trim())));
  const trials = intArg("trials", str(args.trials), defaults.trials, 0);
  const mode = (str(args.allocation) ?? (trials > 0 ? "bo" : "importance")) as AllocationMode;
  if (!(allocationModes as readonly string[]).includes(mode)) throw new SlimtuneError("E_ARG", `--allocation "${mode}" is unknown; choose ${allocationModes.join(", ")}`);
  if (mode === "bo" && trials < 1) throw new SlimtuneError("E_ARG", "--allocation bo needs --trials N (N ≥ 1 allocations to evaluate)");
  const recovery = parseRecovery(args);
  return {
    budget,
    base,
    choices,
    mode,
    samples: intArg("samples", str(args.samples), 8),
    seed: recovery.seed,
    threads: args.threads ? intArg("threads", args.threads, 1) : undefined,
    trials,
    roundSize: intArg("round-size", str(args["round-size"]), 2),
    randomStarts: intArg("random-starts", str(args["random-starts"]), 2, 0),
    workers: str(args.workers) !== undefined ? intArg("workers", str(args.workers), 0, 0) : os.availableParallelism(),
    referenceUniform: Boolean(args["reference-uniform"]),
    recovery,
    task: parseTask(String(args.task ?? "lm")),
    dataFile: str(args.data),
    numLabels: str(args["num-labels"]) ? intArg("num-labels", str(args["num-labels"]), 2, 2) : undefined,
  };
}

/** Progress lines of the allocation on stderr. */
export function mixedProgress(prefix = "") {
  return {
    onStage: (s: string) => process.stderr.write(`${prefix}${s}\n`),
    onTrial: (t: EvaluatedTrial, best: EvaluatedTrial, done: number, total: number) => process.stderr.write(`${prefix}${describeTrial(t, best, done, total)}`),
  };
}

/** Runs the allocation the flags ask for on `model` (saved in `modelDir`, which trials reload). */
export async function mixedPrecisionFromArgs(
  args: Args,
  budget: Budget,
  model: LlamaModel,
  modelDir: string,
  tokenizer: TextTokenizer,
  base: BaseSpec,
  defaults: { trials: number },
): Promise<MixedPrecisionResult> {
  const o = parseMixedOptions(args, budget, base, defaults);
  // Budget bounds first: they need no data.
  checkBudget(budgetModel(model, base, o.choices), budget);
  if (o.mode !== "uniform" && !o.dataFile) throw new SlimtuneError("E_ARG", `--allocation ${o.mode} measures importance on task data; pass --data (a text file, or a labelled TSV with --task classify)`);
  const r = o.recovery;
  const source =
    o.mode === "uniform"
      ? undefined
      : await taskSource(model, tokenizer, { task: o.task, dataFile: o.dataFile!, batch: r.batch, seq: r.seq, maxLen: r.maxLen, numLabels: o.numLabels, headDirs: [modelDir], seed: r.seed, threads: o.threads, modelSource: modelDir });
  return allocateBits(model, {
    ...o,
    source,
    trial: o.dataFile ? { modelDir, task: o.task, dataFile: o.dataFile, numLabels: o.numLabels, ...(source?.kind === "classify" ? { head: source.head } : {}), recovery: r } : undefined,
    ...mixedProgress(),
  });
}

/** Lines for the text summary. */
export function describeAllocation(m: MixedPrecisionResult): string[] {
  const budget = m.budget.kind === "bytes" ? `${(m.budget.limit / 1e6).toFixed(3)} MB` : `${m.budget.limit} bits/weight`;
  const lines = [`mixed precision (${m.mode}) under ${budget}: ${(m.bytes / 1e6).toFixed(3)} MB, ${m.avgBits.toFixed(3)} code bits/weight`];
  lines.push(`  bits per layer: ${m.units.map((u, i) => `${u.replace(/^(model\.layers|transformer\.h)\./, "L")}=${m.allocation[i]}`).join(" ")}`);
  if (m.start && m.mode === "bo") lines.push(`  importance start: ${m.start.join(",")}; best of ${m.trials.length} trials: loss ${m.best!.loss.toFixed(4)} (trial ${m.best!.index}, ${m.best!.origin})`);
  return lines;
}

/** What the allocation wrote beside the model (writeMixedPrecisionReport's list), and what each file holds. */
export function describeReportFiles(dir: string, files: readonly string[]): string {
  const what: Record<string, string> = {
    "mixed-precision.json": "the bits of every layer and every trial",
    "pareto.json": "each trial's held-out loss against stored bytes, and the Pareto front",
    "pareto.svg": "the same as a plot",
  };
  return `also wrote in ${dir}: ${files.map((f) => `${f} (${what[f] ?? "report"})`).join(", ")}`;
}

/**
 * Why the best trial's loss and the final recovery's differ: both are held-out losses, but after other
 * LoRA runs (steps, learning rate), over other amounts of held-out data, and the best trial is the
 * minimum of many, which favours an allocation that happened to suit those few steps.
 */
export function trialVersusFinal(
  m: MixedPrecisionResult,
  trials: { task: "lm" | "classify"; recovery: RecoverySettings },
  final: { loss: number; steps: number; lr: number; scoredOn: string },
): string | null {
  if (!m.best || m.mode !== "bo") return null;
  const r = trials.recovery;
  const trialData = trials.task === "classify" ? `at most ${r.evalExamples.toLocaleString("en")} held-out examples` : `the first ${r.evalTokens.toLocaleString("en")} held-out tokens`;
  return (
    `why the best trial's loss (${m.best.loss.toFixed(4)}) is not the final one (${final.loss.toFixed(4)}): a trial recovers ${r.steps} LoRA step${r.steps === 1 ? "" : "s"} at lr ${r.lr} and is scored on ${trialData}, ` +
    `the final recovery ${final.steps} steps at lr ${final.lr} scored on ${final.scoredOn}; and the best is the lowest of ${m.trials.length} trials, a pick that favours one that suited those few steps. ` +
    `Compare trials with trials (pareto.json) and final losses with final losses`
  );
}
