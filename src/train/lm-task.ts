// Causal language modelling as a training task: random windows of a token stream, held-out
// perplexity on the stream's tail.

import { Graph } from "../engine/index.js";
import { perplexity } from "../eval/perplexity.js";
import type { TuningMethod } from "../methods/method.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../models/llama/lm-graphs.js";
import type { TrainTask } from "./task.js";
import { TextBatches, splitHeldOut } from "../data/text-batches.js";

export interface LmTaskOptions {
  batch: number;
  seq: number;
  /** Fraction of the tokens (the tail) held out; 0 disables evaluation. */
  heldOut: number;
  /** Cap on held-out tokens scored per evaluation. */
  evalTokens: number;
  /** Score these tokens (--eval-data) instead of holding out the tail; then all of `tokens` trains. */
  heldOutTokens?: Int32Array;
}

export function lmTask(tokens: Int32Array, opts: LmTaskOptions): TrainTask {
  const { batch: B, seq: T } = opts;
  const split = opts.heldOutTokens
    ? { train: tokens, heldOut: opts.heldOutTokens }
    : opts.heldOut > 0
      ? splitHeldOut(tokens, opts.heldOut, T)
      : { train: tokens, heldOut: new Int32Array(0) };
  const heldOut = split.heldOut.subarray(0, Math.min(split.heldOut.length, opts.evalTokens));
  return {
    kind: "lm",
    fixed: { task: "lm", batch: B, seq: T },
    extraTrainable: new Map(),
    stepGraph: (method, trainable, _shape, o) => ({
      key: `${method.name}:lm-train:${B}x${T}${o.checkpoint ? ":ckpt" : ""}:r${o.replicas}`,
      build: () => buildLmTrainGraph(method.config, method.params(new Graph(), "train"), B, T, trainable, { checkpoint: o.checkpoint, replicas: o.replicas }),
    }),
    sampler: (rng) => {
      const batches = new TextBatches(split.train, { batch: B, seq: T, rng });
      return {
        next: () => {
          const { inputs, targets } = batches.next();
          return { feeds: { [IDS]: { data: inputs, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } }, tokens: B * T, shape: `${B}x${T}` };
        },
      };
    },
    evaluate: async (method: TuningMethod, cache, weights) => {
      if (heldOut.length < 2) return null;
      const scoring = { config: method.config, params: (g: Graph) => method.params(g), weightFeeds: () => weights, cacheKey: method.name };
      const r = await perplexity(scoring, cache, heldOut, { ctx: T, batch: B });
      return { loss: r.meanNll, metrics: { perplexity: r.perplexity }, examples: r.tokens, seconds: r.seconds };
    },
    saveExtra: () => {},
  };
}
