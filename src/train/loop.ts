// The one training loop every method and task reuses (nanoGPT's shape): schedule → forward/backward
// → accumulate → clip → AdamW → log → periodic held-out eval and checkpoint. Resumable.

import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { type CompiledGraph, type HostTensor, GraphCache } from "../engine/index.js";
import type { TuningMethod } from "../methods/method.js";
import { gradName } from "../models/llama/lm-graphs.js";
import { Rng } from "../core/rng.js";
import { AdamW } from "./adamw.js";
import { type CheckpointState, hasCheckpoint, loadCheckpoint, saveCheckpoint } from "../formats/checkpoint.js";
import { clipScale, globalNorm } from "./clip.js";
import { collectGarbage } from "../engine/collect-garbage.js";
import { DivergenceMonitor } from "./divergence.js";
import { MetricsLog } from "./metrics-log.js";
import { removeStaleTemps } from "../core/output.js";
import { firstNonFinite } from "../models/finite.js";
import { learningRateAt } from "./schedule.js";
import type { BatchSampler, TaskEval, TrainTask } from "./task.js";
import type { HostParam } from "../arch/params.js";

export interface TrainOptions {
  steps: number;
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  /** Max global gradient norm; 0 disables clipping. */
  clip: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  seed: number;
  /** Held-out evaluation every N steps (and always before and after); 0: only before and after. */
  evalEvery: number;
  checkpointEvery: number;
  /** Run folder: checkpoint/ and metrics.jsonl live here, and the result is published here. */
  outDir: string;
  resume: boolean;
  threads?: number;
  /**
   * Which weights the run ends with: "last" (default), or "best" — those of the held-out evaluation
   * with the lowest loss (highest accuracy when the task reports one), restored before finalizing.
   */
  keep?: "last" | "best";
  /** Recompute each decoder layer in the backward (less memory, about one more forward per step). */
  checkpointActivations?: boolean;
  /**
   * Run each language-modelling batch as this many half-batches at once, one core each (ORT's
   * parallel executor) instead of one batch on every core; same loss and gradients. Default 1.
   */
  parallel?: number;
  /**
   * Bytes of trainable weights from which steps run lean (see leanStep); default LEAN_STEP_BYTES.
   * No command sets it: it lets a test drive a small model through the lean path.
   */
  leanStepBytes?: number;
}

export const defaultTrainOptions: Omit<TrainOptions, "outDir" | "steps"> = {
  lr: 1e-4,
  warmupSteps: 10,
  minLrRatio: 0.1,
  weightDecay: 0,
  clip: 1,
  accumulate: 1,
  seed: 0,
  evalEvery: 50,
  checkpointEvery: 50,
  resume: false,
};

export interface StepReport {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
}

export interface TrainHooks {
  onStep?: (report: StepReport, totalSteps: number) => void;
  onEval?: (step: number, result: TaskEval) => void;
  /** Polled after every step: true writes a checkpoint and stops (Ctrl-C). */
  shouldStop?: () => boolean;
}

export interface TrainSummary {
  method: string;
  steps: number;
  resumedFrom: number;
  stopped: boolean;
  trainableParameters: number;
  totalParameters: number;
  tokensSeen: number;
  seconds: number;
  tokensPerSecond: number;
  firstLoss: number | null;
  lastLoss: number | null;
  heldOutBefore: TaskEval | null;
  heldOutAfter: TaskEval | null;
  /** Steps whose loss or gradients were non-finite, skipped without an update. */
  skippedSteps: number;
  /** With keep "best": the step whose weights the run ended with (null: kept the last). */
  keptStep: number | null;
  /** Peak resident memory of this process so far, MiB. */
  peakRssMb: number;
  outDir: string;
}

export async function train(method: TuningMethod, task: TrainTask, opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainSummary> {
  validate(opts);
  const trainable = new Map([...method.trainable, ...task.extraTrainable]);
  const optimizer = new AdamW(new Map([...trainable].map(([k, p]) => [k, p.data])), {
    weightDecay: opts.weightDecay,
    decay: (name) => (task.extraTrainable.has(name) ? true : method.decay(name)),
    lrScale: (name) => (task.extraTrainable.has(name) ? 1 : (method.lrScale?.(name) ?? 1)),
  });
  const fixed = { ...task.fixed, seed: opts.seed, accumulate: opts.accumulate };
  const checkpointDir = path.join(opts.outDir, "checkpoint");
  // Temp folders of a checkpoint write that a killed run left behind.
  removeStaleTemps(checkpointDir);

  let startStep = 0;
  let elapsedBefore = 0;
  let tokensSeen = 0;
  let rng = new Rng(opts.seed);
  if (opts.resume) {
    if (!hasCheckpoint(checkpointDir)) {
      throw new SlimtuneError("E_CHECKPOINT", "--resume: no checkpoint here; run without --resume to start", checkpointDir);
    }
    const { state, moments } = loadCheckpoint(checkpointDir, { method: method.name, fixed }, trainable);
    optimizer.importState(moments);
    startStep = state.step;
    elapsedBefore = state.elapsedSeconds;
    tokensSeen = state.tokensSeen;
    rng = Rng.fromState(state.rng);
  }
  const sampler = task.sampler(rng);
  // A resumed run repeats the steps after its checkpoint: their first records are cut from the log.
  const log = new MetricsLog(path.join(opts.outDir, "metrics.jsonl"), opts.resume ? { append: true, keepThroughStep: startStep } : { append: false });
  // Language modelling only: a classifier that starts at chance would trip the uniform rule.
  const monitor = new DivergenceMonitor(task.kind === "lm" || task.kind === "sft" ? Math.log(method.config.vocabSize) : null);

  const parallel = opts.parallel ?? 1;
  const names = [...trainable.keys()];
  const lean = leanStep([...trainable.values()].reduce((b, p) => b + p.data.byteLength, 0), opts.leanStepBytes);
  const cache = new GraphCache(parallel > 1 ? { threads: 1, interOpThreads: parallel, memoryArena: !lean } : { threads: opts.threads, memoryArena: !lean });
  // Held-out scoring runs one chain, on every core, with the arena (it allocates the same blocks every batch).
  const evalCache = new GraphCache({ threads: opts.threads });
  const stepFor = (shape: string) => {
    const spec = task.stepGraph(method, names, shape, { checkpoint: opts.checkpointActivations ?? false, replicas: parallel });
    return cache.get(spec.key, spec.build);
  };
  const weightFeeds = (): Record<string, HostTensor> => Object.fromEntries(trainable);
  // ORT writes each step's gradients into these, the same buffers every step.
  const gradBuffers = new Map(names.map((n) => [n, { data: new Float32Array(trainable.get(n)!.data.length), shape: trainable.get(n)!.shape }]));

  let done = startStep;
  const best = new BestWeights();
  const diverged = (what: string) => {
    log.write({ kind: "diverged", step: done, reason: what });
    return new SlimtuneError("E_DIVERGED", `training diverged: ${what}; lower --lr (e.g. by 10×) or check the data; the last good checkpoint is kept, nothing was published`);
  };
  const evaluate = async (at: number) => {
    const result = await task.evaluate(method, evalCache, weightFeeds());
    if (!result) return null;
    log.write({ kind: "eval", step: at, held_out_loss: result.loss, ...prefixed(result.metrics), examples: result.examples });
    if (!Number.isFinite(result.loss)) throw diverged(`the held-out loss at step ${at} is ${result.loss}`);
    hooks.onEval?.(at, result);
    if (opts.keep === "best") best.offer(at, result, trainable);
    return result;
  };
  // A checkpoint is only written from finite weights, so the last one on disk is always usable.
  const assertFiniteWeights = () => {
    for (const [name, p] of trainable) {
      const i = firstNonFinite(p.data);
      if (i >= 0) throw diverged(`after step ${done} the trainable tensor ${name} holds ${p.data[i]} at index ${i}`);
    }
  };

  try {
    const heldOutBefore = await evaluate(startStep);
    if (opts.keep === "best" && !heldOutBefore) {
      throw new SlimtuneError("E_ARG", "--keep best chooses by the held-out evaluation, and this run has no held-out data; pass --held-out 0.05 or --eval-data FILE, or --keep last");
    }
    const started = performance.now();
    let firstLoss: number | null = null;
    let lastLoss: number | null = null;
    let stopped = false;
    let ranTokens = 0;
    const checkpoint = () => {
      assertFiniteWeights();
      const state: CheckpointState = {
        format: "slimtune-checkpoint",
        version: 1,
        method: method.name,
        step: done,
        rng: rng.getState(),
        fixed,
        elapsedSeconds: elapsedBefore + (performance.now() - started) / 1000,
        tokensSeen,
      };
      saveCheckpoint(checkpointDir, state, trainable, optimizer.exportState());
    };

    for (let s = startStep; s < opts.steps; s++) {
      const t0 = performance.now();
      // A run shorter than the warm-up simply warms up for all of it.
      const lr = learningRateAt(s, { peak: opts.lr, warmupSteps: Math.min(opts.warmupSteps, opts.steps), totalSteps: opts.steps, minRatio: opts.minLrRatio });
      if (lean) collectGarbage();
      const { loss, grads, tokens } = await forwardBackward(stepFor, sampler, weightFeeds(), gradBuffers, opts.accumulate, () => method.stepFeeds?.(rng) ?? {});
      const gradNorm = globalNorm(grads.values());
      const finite = Number.isFinite(gradNorm) && Number.isFinite(loss);
      // Clipping is applied by AdamW as it reads each gradient (one pass over them, not two).
      if (finite) optimizer.step(grads, lr, clipScale(gradNorm, opts.clip));
      done = s + 1;
      tokensSeen += tokens;
      ranTokens += tokens;
      const seconds = (performance.now() - t0) / 1000;
      const report = { step: done, loss, lr, gradNorm, tokensPerSecond: tokens / seconds };
      firstLoss ??= loss;
      lastLoss = loss;
      log.write({ kind: "train", step: done, loss, lr, grad_norm: gradNorm, tokens_per_s: report.tokensPerSecond, skipped: !finite });
      hooks.onStep?.(report, opts.steps);
      try {
        monitor.observe(done, loss, finite);
      } catch (e) {
        log.write({ kind: "diverged", step: done, reason: (e as Error).message });
        throw e;
      }
      if (opts.evalEvery > 0 && done % opts.evalEvery === 0 && done < opts.steps) await evaluate(done);
      if (opts.checkpointEvery > 0 && done % opts.checkpointEvery === 0) checkpoint();
      if (hooks.shouldStop?.()) {
        stopped = true;
        break;
      }
    }
    checkpoint();
    // The best evaluation's weights replace the last ones before the method finalizes (FineGates
    // hardens its gates then); the evaluation after training then scores what is kept.
    let keptStep: number | null = null;
    if (!stopped && opts.keep === "best") {
      // The last step's weights compete too: evaluate them before choosing.
      await evaluate(done);
      keptStep = best.restoreInto(trainable, done);
    }
    if (!stopped) method.finalize?.();
    const heldOutAfter = stopped ? null : await evaluate(done);
    const seconds = (performance.now() - started) / 1000;
    return {
      method: method.name,
      steps: done,
      resumedFrom: startStep,
      stopped,
      trainableParameters: [...trainable.values()].reduce((n, p) => n + p.data.length, 0),
      totalParameters: method.totalParameters,
      tokensSeen,
      seconds,
      tokensPerSecond: seconds > 0 ? ranTokens / seconds : 0,
      firstLoss,
      lastLoss,
      heldOutBefore,
      heldOutAfter,
      skippedSteps: monitor.skipped,
      keptStep,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      outDir: opts.outDir,
    };
  } finally {
    log.close();
    await cache.clear();
    await evalCache.clear();
  }
}

/**
 * Whether a step with this many bytes of trainable weights (so as many of gradients) runs lean:
 * its sessions without ORT's memory arena, and a full garbage collection before each step.
 * The arena keeps its high-water mark (rounding each growth up), so between runs it held GBs that
 * AdamW's moments then sat on top of; and the copies of the gradients onnxruntime-node returns (the
 * loop drops them at once) stayed resident into the next run until V8 got round to them. At the
 * Qwen2.5-0.5B shape (2 GB of gradients) lean took the peak from 15.6 to 12.0 GB at the same CPU
 * time; at the SmolLM2-135M shape (0.5 GB) it saved 1.4 GB but cost ~5 % more CPU in page faults,
 * and that shape's memory is already well under the peer's (bench/results/train-s28-*).
 */
export function leanStep(trainableBytes: number, threshold = LEAN_STEP_BYTES): boolean {
  return trainableBytes >= threshold;
}

/** 1 GiB of trainable weights: above the SmolLM2-135M shape, below Qwen2.5-0.5B's (see leanStep). */
export const LEAN_STEP_BYTES = 2 ** 30;

/** The trainable tensors at the best held-out evaluation so far (copies, so training goes on). */
class BestWeights {
  private step = -1;
  private score = Infinity;
  private saved: Map<string, Float32Array> | null = null;

  /** Lower is better: the loss, or minus the accuracy when the task reports one. */
  offer(step: number, result: TaskEval, trainable: ReadonlyMap<string, HostParam>): void {
    const score = result.metrics.accuracy !== undefined ? -result.metrics.accuracy : result.loss;
    if (!(score < this.score)) return;
    this.score = score;
    this.step = step;
    this.saved = new Map([...trainable].map(([name, p]) => [name, p.data.slice()]));
  }

  /** Puts the best weights back; returns their step, or null when the last step was the best. */
  restoreInto(trainable: ReadonlyMap<string, HostParam>, lastStep: number): number | null {
    if (!this.saved || this.step === lastStep) return null;
    for (const [name, data] of this.saved) trainable.get(name)!.data.set(data);
    return this.step;
  }
}

function prefixed(metrics: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`held_out_${k}`, v]));
}

/**
 * Runs `accumulate` micro-batches and returns the mean loss and mean gradients, in `gradBuffers`:
 * ORT writes the first micro-batch's gradients there (so its arena never holds a second set of
 * them), and the later micro-batches' gradients, fresh arrays, are added into them. Exported for
 * its test (test/train/step-grad-buffers.test.ts).
 */
export async function forwardBackward(
  stepFor: (shape: string) => Promise<CompiledGraph>,
  sampler: BatchSampler,
  weights: Record<string, HostTensor>,
  gradBuffers: ReadonlyMap<string, HostTensor>,
  accumulate: number,
  stepFeeds: () => Record<string, HostTensor>,
): Promise<{ loss: number; grads: Map<string, Float32Array>; tokens: number }> {
  let loss = 0;
  let tokens = 0;
  const grads = new Map([...gradBuffers].map(([n, t]) => [n, t.data as Float32Array]));
  const into = Object.fromEntries([...gradBuffers].map(([n, t]) => [gradName(n), t]));
  for (let micro = 0; micro < accumulate; micro++) {
    const batch = sampler.next();
    tokens += batch.tokens;
    const step = await stepFor(batch.shape);
    const feeds = { ...weights, ...batch.feeds, ...stepFeeds() };
    if (micro === 0) {
      const out = await step.run(feeds, step.outputNames, into);
      loss += (out.loss!.data[0] as number) / accumulate;
      if (accumulate > 1) for (const g of grads.values()) scale(g, 1 / accumulate);
    } else {
      const out = await step.run(feeds);
      loss += (out.loss!.data[0] as number) / accumulate;
      for (const [n, g] of grads) addScaled(g, out[gradName(n)]!.data as Float32Array, 1 / accumulate);
    }
  }
  return { loss, grads, tokens };
}

function scale(x: Float32Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i]! *= a;
}

function addScaled(acc: Float32Array, x: Float32Array, a: number): void {
  for (let i = 0; i < acc.length; i++) acc[i]! += a * x[i]!;
}

function validate(o: TrainOptions): void {
  const positive: Array<[string, number]> = [
    ["--steps", o.steps],
    ["--accumulate", o.accumulate],
  ];
  for (const [flag, v] of positive) {
    if (!(Number.isInteger(v) && v >= 1)) throw new SlimtuneError("E_ARG", `${flag} ${v} must be a positive integer`);
  }
  if (!(o.lr > 0)) throw new SlimtuneError("E_ARG", `--lr ${o.lr} must be a positive number, e.g. --lr 1e-4`);
}
