// What every tuning method gives the trainer (the tensors that train, how a graph gets its weights,
// how the result is saved), and the definition each method folder exports to the registry.

import type { Graph, HostTensor } from "../engine/index.js";
import type { Rng } from "../core/rng.js";
import type { HostParam, ParamSource } from "../arch/params.js";
import type { LlamaConfig } from "../arch/llama/config.js";
import type { LoadedBase } from "../models/load.js";
import type { FlagSpecs, FlagValues } from "./flags.js";

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
  /**
   * Work the method does before the task's training loop starts (ReALLM's block-wise fitting of its
   * low-rank factors to the float model's block outputs); returns what to report, or null.
   */
  prepare?(ctx: PrepareContext): Promise<Record<string, unknown> | null>;
  /** Writes what training produced (a model folder, an adapter) into `outDir`. */
  save(outDir: string): void;
  /** Parameters of the whole model, trainable or not. */
  readonly totalParameters: number;
}

/** What `prepare` gets: the training text and an optimizer (AdamW, injected from train/, which sits above methods/). */
export interface PrepareContext {
  /** The training text's token ids (language modelling). */
  tokens: Int32Array;
  /** Tokens per window. */
  seq: number;
  seed: number;
  threads?: number;
  optimizer(params: Map<string, Float32Array>): { step(grads: Map<string, Float32Array>, lr: number): void };
  log(message: string): void;
}

/** Options every method may use, whatever its own flags. */
export interface MethodContext {
  /** Seeds initialisation (LoRA's A, …). */
  seed: number;
  /** Start from this saved result instead of the method's initial values. */
  adapter?: string;
}

/**
 * One tuning method, as its folder exports it: what it is, the flags it owns (with their defaults,
 * in one place), how to create it on a loaded base, and how to recognise and load what it saved.
 * The registry is a list of these; the CLI derives `finetune`'s flags and `eval --adapter` from them.
 */
export interface MethodDefinition<F extends FlagSpecs = FlagSpecs> {
  name: string;
  summary: string;
  /** Which kind of model folder --model must be. */
  needs: "float" | "quantized";
  /**
   * `finetune`'s learning rate when --lr is not given: what moves this method's parameters in a few
   * hundred steps (the rates the results in docs/results/ used). A PEQA scale needs ~20× a full weight's.
   */
  defaultLr: number;
  flags: F;
  create(base: LoadedBase, opts: FlagValues<F>, ctx: MethodContext): TuningMethod;
  /** For methods whose result is an adapter on an unchanged base (LoRA, PEQA): how to find and load one. */
  adapter?: {
    /** True when `dir` holds this method's adapter (whatever base it is for). */
    detect(dir: string): boolean;
    /** The adapter on `base`, ready to evaluate or to train further; a typed error when it does not fit. */
    load(base: LoadedBase, dir: string): TuningMethod;
  };
}

/** Defines a method with its flag types checked against `create` (use instead of a bare object literal). */
export function defineMethod<F extends FlagSpecs>(definition: MethodDefinition<F>): MethodDefinition<F> {
  return definition;
}
