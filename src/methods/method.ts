// What every tuning method gives the trainer: the tensors that train, how a graph gets its
// weights, and how the result is saved.

import type { Graph, HostTensor } from "../engine/index.js";
import type { Rng } from "../util/rng.js";
import type { LlamaConfig } from "../formats/hf-config.js";
import type { HostParam, ParamSource } from "../models/llama/params.js";

export interface TuningMethod {
  readonly name: string;
  readonly config: LlamaConfig;
  /** Tensors that train, by name; the optimizer updates them in place. */
  readonly trainable: ReadonlyMap<string, HostParam>;
  /**
   * Weights for a new graph: trainable tensors as inputs named as in `trainable`, the rest frozen.
   * "train" graphs may add stochastic parts (gate noise) fed by `stepFeeds`.
   */
  params(graph: Graph, mode?: "train" | "eval"): ParamSource;
  /** Fresh per-step inputs of "train" graphs (noise), drawn from the run's seeded generator. */
  stepFeeds?(rng: Rng): Record<string, HostTensor>;
  /** Which trainable tensors get weight decay. */
  decay(name: string): boolean;
  /** Learning-rate multiplier per trainable tensor (default 1). */
  lrScale?(name: string): number;
  /**
   * Called once after the last step, before the final evaluation: a method whose deployed form
   * differs from its training form (FineGates hardening its gates) makes them equal here, so the
   * final numbers describe what `save` writes.
   */
  finalize?(): void;
  /** Writes what training produced (a model folder, an adapter) into `outDir`. */
  save(outDir: string): void;
  /** Parameters of the whole model, trainable or not. */
  readonly totalParameters: number;
}
