// The two graphs every method runs: a training step (loss + gradients of the trainable inputs)
// and a scoring pass (per-token negative log-likelihood, for perplexity).

import { type Graph, type GraphOutputs, type Value, add, crossEntropy, crossEntropyMean, grad, logSoftmax } from "../../engine/index.js";
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
  opts: { logits?: boolean } = {},
): LmGraph {
  const g = params.graph;
  const { loss, logits } = lmLoss(config, params, batch, seq);
  const byName = new Map(g.inputs.map((v) => [v.name!, v]));
  const targets = wrt.map((name) => {
    const v = byName.get(name);
    if (!v) throw new Error(`"${name}" is not a graph input; trainable tensors must be inputs`);
    return v;
  });
  const outputs: GraphOutputs = { loss };
  const penalty = params.penalty?.() ?? null;
  if (penalty) outputs.penalty = penalty;
  grad(penalty ? add(loss, penalty) : loss, targets).forEach((gv, i) => (outputs[gradName(wrt[i]!)] = gv));
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

function lmLoss(config: LlamaConfig, params: ParamSource, batch: number, seq: number): { loss: Value; logits: Value } {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const targets = g.input(TARGETS, [batch * seq], "int64");
  const logits = llamaLogits(config, params, llamaHidden(config, params, { ids }));
  const loss = crossEntropyMean(logits, targets);
  return { loss, logits };
}
