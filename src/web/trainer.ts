// Training steps a page can drive one at a time (a button, a loss chart): the pieces train/loop.ts
// runs — the task's step graph, AdamW, global-norm clipping, the warm-up + cosine schedule — with
// the same seeded batch order, minus what needs a file system (checkpoints, metrics.jsonl). The
// browser tests check that a run here gives train()'s loss and weights in Node.

import { Rng } from "../core/rng.js";
import { SlimtuneError } from "../core/errors.js";
import { GraphCache, type HostTensor } from "../engine/index.js";
import type { TuningMethod } from "../methods/method.js";
import { gradName } from "../models/llama/lm-graphs.js";
import { AdamW } from "../train/adamw.js";
import { clipByGlobalNorm } from "../train/clip.js";
import { lmTask } from "../train/lm-task.js";
import type { TrainOptions } from "../train/loop.js";
import { learningRateAt } from "../train/schedule.js";
import type { BatchSampler, TaskEval, TrainTask } from "../train/task.js";

/** train()'s options for one run of `steps` (the schedule decays over them), plus the page's batch shape and held-out fraction. */
export type WebTrainOptions = Pick<TrainOptions, "steps" | "lr" | "warmupSteps" | "minLrRatio" | "weightDecay" | "clip" | "seed"> & {
  batch: number;
  seq: number;
  /** Fraction of the tokens held out for evaluation (0: none). */
  heldOut: number;
};

export interface WebStep {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /**
   * Where the step's time went, in seconds: the step graph's run (feeds in, kernels, gradients out)
   * and everything around it on the host (batch, graph lookup, clipping, AdamW). The benchmark
   * reads these to tell ONNX Runtime's share from the JavaScript side's.
   */
  seconds: { run: number; host: number };
  /** Gradients before clipping (kept only when asked, for the tests against Node). */
  grads?: Map<string, Float32Array>;
}

export class WebTrainer {
  private readonly optimizer: AdamW;
  private readonly task: TrainTask;
  private readonly sampler: BatchSampler;
  private readonly names: string[];
  private readonly rng: Rng;
  private done = 0;

  constructor(
    readonly method: TuningMethod,
    /** Plain text's tokens (language modelling), or a task already built (instruction records: web/training-data.ts). */
    data: Int32Array | TrainTask,
    readonly opts: WebTrainOptions,
    private readonly cache: GraphCache,
  ) {
    if (data instanceof Int32Array && data.length < opts.seq + 1) {
      throw new SlimtuneError("E_DATA", `the text has ${data.length} tokens; training needs at least ${opts.seq + 1} (one window of ${opts.seq} plus its next token) — paste more text`);
    }
    // As train(): one seeded generator, first handed to the batch sampler.
    this.rng = new Rng(opts.seed);
    this.task = data instanceof Int32Array ? lmTask(data, { batch: opts.batch, seq: opts.seq, heldOut: opts.heldOut, evalTokens: 1 << 16 }) : data;
    this.sampler = this.task.sampler(this.rng);
    this.names = [...method.trainable.keys()];
    this.optimizer = new AdamW(new Map([...method.trainable].map(([k, p]) => [k, p.data])), {
      weightDecay: opts.weightDecay,
      decay: (name) => method.decay(name),
      lrScale: (name) => method.lrScale?.(name) ?? 1,
    });
  }

  get stepsDone(): number {
    return this.done;
  }

  /** One optimizer step on the next batch; returns what the chart shows. */
  async step(keepGrads = false): Promise<WebStep> {
    const { opts, method } = this;
    if (this.done >= opts.steps) throw new SlimtuneError("E_ARG", `this run has done its ${opts.steps} steps; start another`);
    const t0 = performance.now();
    const lr = learningRateAt(this.done, { peak: opts.lr, warmupSteps: Math.min(opts.warmupSteps, opts.steps), totalSteps: opts.steps, minRatio: opts.minLrRatio });
    const batch = this.sampler.next();
    const spec = this.task.stepGraph(method, this.names, batch.shape, { checkpoint: false, replicas: 1 });
    const graph = await this.cache.get(spec.key, spec.build);
    const weights: Record<string, HostTensor> = Object.fromEntries(method.trainable);
    const feeds = { ...weights, ...batch.feeds, ...(method.stepFeeds?.(this.rng) ?? {}) };
    const r0 = performance.now();
    const out = await graph.run(feeds);
    const run = (performance.now() - r0) / 1000;
    const loss = out.loss!.data[0] as number;
    const grads = new Map(this.names.map((n) => [n, out[gradName(n)]!.data as Float32Array]));
    const kept = keepGrads ? new Map([...grads].map(([n, g]) => [n, g.slice()])) : undefined;
    const gradNorm = clipByGlobalNorm(grads, opts.clip);
    if (!(Number.isFinite(gradNorm) && Number.isFinite(loss))) {
      throw new SlimtuneError("E_DIVERGED", `step ${this.done + 1}: the loss or gradients are not finite (loss ${loss}); lower the learning rate`);
    }
    this.optimizer.step(grads, lr);
    this.done++;
    const seconds = (performance.now() - t0) / 1000;
    return { step: this.done, loss, lr, gradNorm, tokensPerSecond: batch.tokens / seconds, seconds: { run, host: seconds - run }, ...(kept ? { grads: kept } : {}) };
  }

  /** Held-out loss and perplexity with the current weights (null when nothing is held out). */
  async evaluate(): Promise<TaskEval | null> {
    return this.task.evaluate(this.method, this.cache, Object.fromEntries(this.method.trainable));
  }
}
