// Sequence classification as transformers' LlamaForSequenceClassification does it: a bias-free
// linear head `score` on the hidden state of each sequence's last non-padding token. Sequences
// are right-padded, so causal attention keeps padding out of every real token's view.

import { type Graph, type GraphOutputs, type Value, crossEntropyMean, gather, gemm } from "../../engine/index.js";
import { llamaHidden } from "./graph.js";
import { IDS, lossAndGradients } from "./lm-graphs.js";
import type { ParamSource } from "../../arch/params.js";
import type { LlamaConfig } from "../../arch/llama/config.js";

export const LAST = "last_index";
export const LABELS = "labels";
export const HEAD = "score.weight";

/** Logits [B, L] from ids [B, T] and the flat index b·T + len_b − 1 of each last real token. */
function classify(config: LlamaConfig, params: ParamSource, head: Value, batch: number, seq: number, checkpoint = false): Value {
  const g = params.graph;
  const ids = g.input(IDS, [batch, seq], "int64");
  const last = g.input(LAST, [batch], "int64");
  const hidden = llamaHidden(config, params, { ids, checkpoint }); // (B·T, C)
  return gemm(gather(hidden, last), head, { transB: true }); // (B, L)
}

export function buildClsTrainGraph(
  config: LlamaConfig,
  params: ParamSource,
  numLabels: number,
  batch: number,
  seq: number,
  wrt: readonly string[],
  opts: { checkpoint?: boolean } = {},
): { graph: Graph; outputs: GraphOutputs } {
  const g = params.graph;
  const checkpoint = opts.checkpoint ?? false;
  const head = g.input(HEAD, [numLabels, config.hiddenSize]);
  const logits = classify(config, params, head, batch, seq, checkpoint);
  const labels = g.input(LABELS, [batch], "int64");
  const loss = crossEntropyMean(logits, labels);
  const outputs = lossAndGradients(params, loss, wrt, checkpoint);
  return { graph: g, outputs };
}

export function buildClsScoreGraph(config: LlamaConfig, params: ParamSource, numLabels: number, batch: number, seq: number): { graph: Graph; outputs: GraphOutputs } {
  const head = params.graph.input(HEAD, [numLabels, config.hiddenSize]);
  return { graph: params.graph, outputs: { logits: classify(config, params, head, batch, seq) } };
}
