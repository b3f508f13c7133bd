// The two graphs every method runs: a training step (loss + gradients of the trainable inputs)
// and a scoring pass (per-token negative log-likelihood, for perplexity).

import { type Graph, type GraphOutputs, type Value, add, crossEntropy, crossEntropyMean, grad, logSoftmax } from "../../engine/index.js";
import { SlimtuneError } from "../../core/errors.js";
import { llamaHidden, llamaLogits } from "./graph.js";
import type { ParamSource } from "../../arch/params.js";
import type { LlamaConfig } from "../../arch/llama/config.js";

export const IDS = "input_ids";
export const TARGETS = "targets";
export const gradName = (param: string) => `grad:${param}`;

export interface LmGraph {
  graph: Graph;
  outputs: GraphOutputs;
}

/**
 * ids [B, T] → mean cross-entropy "loss" and "grad:<name>" for each input named in `wrt`; a
 * method's penalty (output "penalty") is added to the loss that is differentiated.
 */
export function buildLmTrainGraph(
  config: LlamaConfig,
  params: ParamSource,
  batch: number,
  seq: number,
  wrt: readonly string[],
  opts: { logits?: boolean; checkpoint?: boolean } = {},
): LmGraph {
  const g = params.graph;
  const { loss, logits } = lmLoss(config, params, batch, seq, opts.checkpoint ?? false);
  const byName = new Map(g.inputs.map((v) => [v.name!, v]));
  const targets = wrt.map((name) => {
    const v = byName.get(name);
    if (!v) throw new Error(`"${name}" is not a graph input; trainable tensors must be inputs`);
    return v;
  });
  const outputs: GraphOutputs = { loss };
  const penalty = trainingPenalty(params, opts.checkpoint ?? false);
  if (penalty) outputs.penalty = penalty;
  grad(penalty ? add(loss, penalty) : loss, targets, { checkpoint: opts.checkpoint ?? false }).forEach((gv, i) => (outputs[gradName(wrt[i]!)] = gv));
  if (opts.logits) outputs.logits = logits;
  return { graph: g, outputs };
}

/** ids [B, T], targets [B·T] → per-token negative log-likelihood "nll" [B·T]. */
export function buildLmScoreGraph(config: LlamaConfig, params: ParamSource, batch: number, seq: number): LmGraph {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const targets = g.input(TARGETS, [batch * seq], "int64");
  const logits = llamaLogits(config, params, llamaHidden(config, params, { ids }));
  return { graph: g, outputs: { nll: crossEntropy(logits, targets) } };
}

/** ids [B, T] → next-token log-probabilities "logprobs" [B·T, V] (for KL to a reference model). */
export function buildLmLogProbGraph(config: LlamaConfig, params: ParamSource, batch: number, seq: number): LmGraph {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const logits = llamaLogits(config, params, llamaHidden(config, params, { ids }));
  return { graph: g, outputs: { logprobs: logSoftmax(logits, -1) } };
}

/**
 * The method's regularizer, if any. Penalty terms (FineGates' gate probabilities) are built inside
 * the decoder layers but summed outside them, which a recomputed layer cannot offer.
 */
export function trainingPenalty(params: ParamSource, checkpoint: boolean): Value | null {
  const penalty = params.penalty?.() ?? null;
  if (penalty && checkpoint) {
    throw new SlimtuneError("E_ARG", "--checkpoint-activations does not work with a method that adds a penalty inside the layers (finegates); train it without checkpointing");
  }
  return penalty;
}

function lmLoss(config: LlamaConfig, params: ParamSource, batch: number, seq: number, checkpoint: boolean): { loss: Value; logits: Value } {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const targets = g.input(TARGETS, [batch * seq], "int64");
  const logits = llamaLogits(config, params, llamaHidden(config, params, { ids, checkpoint }));
  const loss = crossEntropyMean(logits, targets);
  return { loss, logits };
}
