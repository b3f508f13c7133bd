// What the training loop trains toward: a task supplies the step graph, the batches and the
// held-out evaluation, so one loop serves language modelling and classification alike.

import type { GraphCache, GraphOutputs, Graph, HostTensor } from "../engine/index.js";
import type { TuningMethod } from "../methods/method.js";
import type { Rng } from "../core/rng.js";
import type { HostParam } from "../arch/params.js";

export interface TaskEval {
  /** Mean loss on the held-out data. */
  loss: number;
  /** Task metrics, e.g. { perplexity } or { accuracy }. */
  metrics: Record<string, number>;
  examples: number;
  seconds: number;
}

export interface Batch {
  feeds: Record<string, HostTensor>;
  /** Real (non-padding) tokens in the batch, for tokens/s. */
  tokens: number;
  /** Which step graph runs this batch (tasks with padded buckets compile one per shape). */
  shape: string;
}

export interface BatchSampler {
  next(): Batch;
}

export interface StepGraphOptions {
  /** Recompute each decoder layer in the backward instead of keeping its activations. */
  checkpoint: boolean;
  /** Split each batch into this many independent chains that run at once (language modelling). */
  replicas: number;
}

export interface TrainTask {
  readonly kind: string;
  /** Settings that must not change across a resume. */
  readonly fixed: Record<string, number | string>;
  /** Tensors the task itself adds to the method's (a classification head). */
  readonly extraTrainable: ReadonlyMap<string, HostParam>;
  /** The step graph for batches of `shape`: "loss" and "grad:<name>" for each name in `trainable`. */
  stepGraph(method: TuningMethod, trainable: readonly string[], shape: string, opts: StepGraphOptions): { key: string; build: () => { graph: Graph; outputs: GraphOutputs } };
  sampler(rng: Rng): BatchSampler;
  /** Held-out evaluation with the current weights (`weights` feeds every trainable tensor). */
  evaluate(method: TuningMethod, cache: GraphCache, weights: Record<string, HostTensor>): Promise<TaskEval | null>;
  /** Writes the task's own tensors beside the method's result. */
  saveExtra(outDir: string): void;
}
