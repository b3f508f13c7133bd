// Graphs of instruction tuning over packed rows: several examples per row, each with positions
// restarting at 0 and a block-diagonal causal mask, and a per-token loss weight so only answer
// tokens carry loss. The training graph's loss is Σ weight · nll; the host feeds weights of
// 1 / (answer tokens in the batch), making it the mean over the batch's answer tokens.

import { type Graph, type GraphOutputs, crossEntropy, crossEntropyWeighted } from "../../engine/index.js";
import type { ParamSource } from "../../arch/params.js";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { llamaHidden, llamaLogits } from "./graph.js";
import { IDS, TARGETS, lossAndGradients } from "./lm-graphs.js";

export const POSITIONS = "position_ids";
export const EXAMPLE_MASK = "example_mask";
export const LOSS_WEIGHTS = "loss_weights";

function packedLogits(config: LlamaConfig, params: ParamSource, batch: number, seq: number, checkpoint: boolean) {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const positions = g.input(POSITIONS, [batch, seq], "int64");
  const exampleMask = g.input(EXAMPLE_MASK, [batch, 1, seq, seq]);
  const targets = g.input(TARGETS, [batch * seq], "int64");
  const logits = llamaLogits(config, params, llamaHidden(config, params, { ids, checkpoint, packed: { positions, exampleMask } }));
  return { logits, targets };
}

/** Packed ids, positions, mask, targets and loss weights [B·T] → "loss" and "grad:<name>" for each of `wrt`. */
export function buildSftTrainGraph(
  config: LlamaConfig,
  params: ParamSource,
  batch: number,
  seq: number,
  wrt: readonly string[],
  opts: { checkpoint?: boolean } = {},
): { graph: Graph; outputs: GraphOutputs } {
  const g = params.graph;
  const checkpoint = opts.checkpoint ?? false;
  const { logits, targets } = packedLogits(config, params, batch, seq, checkpoint);
  const weights = g.input(LOSS_WEIGHTS, [batch * seq]);
  const loss = crossEntropyWeighted(logits, targets, weights);
  const outputs = lossAndGradients(params, loss, wrt, checkpoint);
  return { graph: g, outputs };
}

/** Packed rows → per-token negative log-likelihood "nll" [B·T] (the host keeps the answer tokens'). */
export function buildSftScoreGraph(config: LlamaConfig, params: ParamSource, batch: number, seq: number): { graph: Graph; outputs: GraphOutputs } {
  const { logits, targets } = packedLogits(config, params, batch, seq, false);
  return { graph: params.graph, outputs: { nll: crossEntropy(logits, targets) } };
}
