// The two graphs every method runs: a training step (loss + gradients of the trainable inputs)
// and a scoring pass (per-token negative log-likelihood, for perplexity).

import { type Graph, type GraphOutputs, type Value, add, concat, crossEntropy, crossEntropyMean, grad, logSoftmax, mul, slice } from "../../engine/index.js";
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
  opts: { logits?: boolean; checkpoint?: boolean; replicas?: number } = {},
): LmGraph {
  const g = params.graph;
  const { loss, logits } = lmLoss(config, params, batch, seq, opts.checkpoint ?? false, opts.replicas ?? 1);
  const outputs = lossAndGradients(params, loss, wrt, opts.checkpoint ?? false);
  if (opts.logits) outputs.logits = logits();
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
/**
 * The outputs every training graph has: "loss", the method's "penalty" when it has one, and
 * "grad:<name>" of loss + penalty for each graph input named in `wrt`.
 */
export function lossAndGradients(params: ParamSource, loss: Value, wrt: readonly string[], checkpoint: boolean): GraphOutputs {
  const byName = new Map(params.graph.inputs.map((v) => [v.name!, v]));
  const inputs = wrt.map((name) => {
    const v = byName.get(name);
    if (!v) throw new Error(`"${name}" is not a graph input; trainable tensors must be inputs`);
    return v;
  });
  const outputs: GraphOutputs = { loss };
  const penalty = trainingPenalty(params, checkpoint);
  if (penalty) outputs.penalty = penalty;
  grad(penalty ? add(loss, penalty) : loss, inputs, { checkpoint }).forEach((gv, i) => (outputs[gradName(wrt[i]!)] = gv));
  return outputs;
}

export function trainingPenalty(params: ParamSource, checkpoint: boolean): Value | null {
  const penalty = params.penalty?.() ?? null;
  if (penalty && checkpoint) {
    throw new SlimtuneError("E_ARG", "--checkpoint-activations does not work with a method that adds a penalty inside the layers (finegates); train it without checkpointing");
  }
  return penalty;
}

/**
 * Mean cross-entropy of the batch. With `replicas` > 1 the batch is split into that many
 * independent chains over the same weights (their losses averaged, so loss and gradients are the
 * batch's), which ORT's parallel executor can run at once, one core each.
 */
function lmLoss(config: LlamaConfig, params: ParamSource, batch: number, seq: number, checkpoint: boolean, replicas: number): { loss: Value; logits: () => Value } {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const targets = g.input(TARGETS, [batch * seq], "int64");
  if (!(Number.isInteger(replicas) && replicas >= 1 && batch % replicas === 0)) {
    throw new SlimtuneError("E_ARG", `--batch ${batch} cannot be split into ${replicas} equal parts; use a batch that is a multiple of ${replicas}`);
  }
  const part = batch / replicas;
  const chains = Array.from({ length: replicas }, (_, r) => {
    const rIds = replicas === 1 ? ids : slice(ids, 0, r * part, (r + 1) * part);
    const rTargets = replicas === 1 ? targets : slice(targets, 0, r * part * seq, (r + 1) * part * seq);
    const logits = llamaLogits(config, params, llamaHidden(config, params, { ids: rIds, checkpoint }));
    return { logits, loss: crossEntropyMean(logits, rTargets) };
  });
  let loss = chains[0]!.loss;
  for (const c of chains.slice(1)) loss = add(loss, c.loss);
  if (replicas > 1) loss = mul(loss, g.scalar(1 / replicas));
  // Built only when asked for: an unused Concat would still run.
  const logits = () => (replicas === 1 ? chains[0]!.logits : concat(chains.map((c) => c.logits), 0));
  return { loss, logits };
}
