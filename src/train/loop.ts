// The one training loop every method reuses (nanoGPT's shape): schedule → forward/backward →
// accumulate → clip → AdamW → log → periodic held-out eval and checkpoint. Resumable.

import path from "node:path";
import { SlimtuneError } from "../errors.js";
import { type CompiledGraph, type HostTensor, Graph, GraphCache } from "../engine/index.js";
import { perplexity, type PerplexityResult, type ScoringModel } from "../eval/perplexity.js";
import type { TuningMethod } from "../methods/method.js";
import { buildLmTrainGraph, gradName, IDS, TARGETS } from "../models/llama/lm-graphs.js";
import { Rng } from "../util/rng.js";
import { AdamW } from "./adamw.js";
import { type CheckpointState, hasCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { clipByGlobalNorm } from "./clip.js";
import { MetricsLog } from "./metrics-log.js";
import { learningRateAt } from "./schedule.js";
import { TextBatches, splitHeldOut } from "./text-batches.js";

export interface TrainOptions {
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  warmupSteps: number;
  minLrRatio: number;
  weightDecay: number;
  /** Max global gradient norm; 0 disables clipping. */
  clip: number;
  /** Micro-batches per optimizer step. */
  accumulate: number;
  seed: number;
  /** Held-out fraction of the tokens (the tail), scored every `evalEvery` steps; 0 disables. */
  heldOut: number;
  evalEvery: number;
  /** Cap on held-out tokens scored per eval, to keep evals short. */
  evalTokens: number;
  checkpointEvery: number;
  /** Run folder: checkpoint/ and metrics.jsonl live here, and the result is published here. */
  outDir: string;
  resume: boolean;
  threads?: number;
}

export const defaultTrainOptions: Omit<TrainOptions, "outDir" | "steps"> = {
  batch: 8,
  seq: 256,
  lr: 1e-4,
  warmupSteps: 10,
  minLrRatio: 0.1,
  weightDecay: 0,
  clip: 1,
  accumulate: 1,
  seed: 0,
  heldOut: 0.05,
  evalEvery: 50,
  evalTokens: 32_768,
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
  onEval?: (step: number, result: PerplexityResult) => void;
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
  heldOutBefore: PerplexityResult | null;
  heldOutAfter: PerplexityResult | null;
  outDir: string;
}

export async function train(method: TuningMethod, tokens: Int32Array, opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainSummary> {
  validate(opts);
  const { batch: B, seq: T } = opts;
  const split = opts.heldOut > 0 ? splitHeldOut(tokens, opts.heldOut, T) : { train: tokens, heldOut: new Int32Array(0) };
  const heldOut = split.heldOut.subarray(0, Math.min(split.heldOut.length, opts.evalTokens));
  const rng = new Rng(opts.seed);
  const trainable = method.trainable;
  const optimizer = new AdamW(new Map([...trainable].map(([k, p]) => [k, p.data])), {
    weightDecay: opts.weightDecay,
    decay: (name) => method.decay(name),
  });
  const fixed = { batch: B, seq: T, seed: opts.seed, accumulate: opts.accumulate };
  const checkpointDir = path.join(opts.outDir, "checkpoint");

  let startStep = 0;
  let elapsedBefore = 0;
  let tokensSeen = 0;
  let sampler: Rng = rng;
  if (opts.resume) {
    if (!hasCheckpoint(checkpointDir)) {
      throw new SlimtuneError("E_CHECKPOINT", "--resume: no checkpoint here; run without --resume to start", checkpointDir);
    }
    const state = loadCheckpoint(checkpointDir, { method: method.name, fixed }, trainable, optimizer);
    startStep = state.step;
    elapsedBefore = state.elapsedSeconds;
    tokensSeen = state.tokensSeen;
    sampler = Rng.fromState(state.rng);
  }
  const batches = new TextBatches(split.train, { batch: B, seq: T, rng: sampler });
  const log = new MetricsLog(path.join(opts.outDir, "metrics.jsonl"), { append: opts.resume });

  const cache = new GraphCache({ threads: opts.threads });
  const names = [...trainable.keys()];
  const step = await cache.get(`${method.name}:train:${B}x${T}`, () =>
    buildLmTrainGraph(method.config, method.params(new Graph()), B, T, names),
  );
  const weightFeeds = (): Record<string, HostTensor> => Object.fromEntries(trainable);
  const scoring: ScoringModel = { config: method.config, params: (g) => method.params(g), weightFeeds, cacheKey: method.name };
  const evaluate = async (at: number) => {
    if (heldOut.length < 2) return null;
    const result = await perplexity(scoring, cache, heldOut, { ctx: T, batch: B });
    log.write({ kind: "eval", step: at, held_out_loss: result.meanNll, held_out_perplexity: result.perplexity, tokens: result.tokens });
    hooks.onEval?.(at, result);
    return result;
  };

  const heldOutBefore = await evaluate(startStep);
  const started = performance.now();
  let firstLoss: number | null = null;
  let lastLoss: number | null = null;
  let done = startStep;
  let stopped = false;
  const checkpoint = () => {
    const state: CheckpointState = {
      format: "slimtune-checkpoint",
      version: 1,
      method: method.name,
      step: done,
      rng: sampler.getState(),
      fixed,
      elapsedSeconds: elapsedBefore + (performance.now() - started) / 1000,
      tokensSeen,
    };
    saveCheckpoint(checkpointDir, state, trainable, optimizer);
  };

  for (let s = startStep; s < opts.steps; s++) {
    const t0 = performance.now();
    const lr = learningRateAt(s, { peak: opts.lr, warmupSteps: opts.warmupSteps, totalSteps: opts.steps, minRatio: opts.minLrRatio });
    const { loss, grads } = await forwardBackward(step, batches, weightFeeds(), names, opts.accumulate, B, T);
    const gradNorm = clipByGlobalNorm(grads, opts.clip);
    if (Number.isFinite(gradNorm) && Number.isFinite(loss)) optimizer.step(grads, lr);
    done = s + 1;
    tokensSeen += B * T * opts.accumulate;
    const seconds = (performance.now() - t0) / 1000;
    const report = { step: done, loss, lr, gradNorm, tokensPerSecond: (B * T * opts.accumulate) / seconds };
    firstLoss ??= loss;
    lastLoss = loss;
    log.write({ kind: "train", step: done, loss, lr, grad_norm: gradNorm, tokens_per_s: report.tokensPerSecond, skipped: !Number.isFinite(gradNorm) });
    hooks.onStep?.(report, opts.steps);
    if (opts.evalEvery > 0 && done % opts.evalEvery === 0 && done < opts.steps) await evaluate(done);
    if (opts.checkpointEvery > 0 && done % opts.checkpointEvery === 0) checkpoint();
    if (hooks.shouldStop?.()) {
      stopped = true;
      break;
    }
  }
  checkpoint();
  const heldOutAfter = stopped ? null : await evaluate(done);
  const seconds = (performance.now() - started) / 1000;
  log.close();
  await cache.clear();
  const ranTokens = (done - startStep) * B * T * opts.accumulate;
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
    outDir: opts.outDir,
  };
}

/** Runs `accumulate` micro-batches and returns the mean loss and mean gradients. */
async function forwardBackward(
  step: CompiledGraph,
  batches: TextBatches,
  weights: Record<string, HostTensor>,
  names: readonly string[],
  accumulate: number,
  B: number,
  T: number,
): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  let loss = 0;
  let grads: Map<string, Float32Array> | null = null;
  for (let micro = 0; micro < accumulate; micro++) {
    const { inputs, targets } = batches.next();
    const out = await step.run({ ...weights, [IDS]: { data: inputs, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } });
    loss += (out.loss!.data[0] as number) / accumulate;
    if (!grads) {
      grads = new Map(names.map((n) => [n, out[gradName(n)]!.data as Float32Array]));
      if (accumulate > 1) for (const g of grads.values()) scale(g, 1 / accumulate);
    } else {
      for (const n of names) addScaled(grads.get(n)!, out[gradName(n)]!.data as Float32Array, 1 / accumulate);
    }
  }
  return { loss, grads: grads! };
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
    ["--batch", o.batch],
    ["--seq", o.seq],
    ["--accumulate", o.accumulate],
  ];
  for (const [flag, v] of positive) {
    if (!(Number.isInteger(v) && v >= 1)) throw new SlimtuneError("E_ARG", `${flag} ${v} must be a positive integer`);
  }
  if (!(o.lr > 0)) throw new SlimtuneError("E_ARG", `--lr ${o.lr} must be a positive number, e.g. --lr 1e-4`);
  if (!(o.heldOut >= 0 && o.heldOut < 0.5)) throw new SlimtuneError("E_ARG", `--held-out ${o.heldOut} must be in [0, 0.5)`);
}
