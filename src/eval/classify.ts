// Padded classification batches (right padding, lengths bucketed to a few static shapes) and
// accuracy over a labelled set.

import { type GraphCache, type HostTensor, Graph } from "../engine/index.js";
import type { LlamaConfig } from "../formats/hf-config.js";
import { buildClsScoreGraph, LAST } from "../models/llama/cls-graphs.js";
import { IDS } from "../models/llama/lm-graphs.js";
import type { ParamSource } from "../models/llama/params.js";

export interface TokenizedExample {
  ids: Int32Array;
  label: number;
}

/** Padded length for a batch whose longest example has `len` tokens: 16, 32, 64, … up to `maxLen`. */
export function bucketLength(len: number, maxLen: number): number {
  let t = 16;
  while (t < len && t < maxLen) t *= 2;
  return Math.min(t, maxLen);
}

/** ids [B, T] right-padded with `padId`, the flat index of each last real token, and the labels. */
export function padBatch(examples: readonly TokenizedExample[], maxLen: number, padId: number) {
  const B = examples.length;
  const T = bucketLength(Math.max(...examples.map((e) => Math.min(e.ids.length, maxLen))), maxLen);
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const last = new BigInt64Array(B);
  const labels = new BigInt64Array(B);
  let tokens = 0;
  examples.forEach((e, b) => {
    const n = Math.max(1, Math.min(e.ids.length, T));
    for (let t = 0; t < Math.min(n, e.ids.length); t++) ids[b * T + t] = BigInt(e.ids[t]!);
    last[b] = BigInt(b * T + n - 1);
    labels[b] = BigInt(e.label);
    tokens += n;
  });
  return { B, T, ids, last, labels, tokens };
}

export interface ClassifierModel {
  config: LlamaConfig;
  numLabels: number;
  params(graph: Graph): ParamSource;
  /** Feeds for the graph's weight inputs, including the head "score.weight". */
  weightFeeds(): Record<string, HostTensor>;
  cacheKey: string;
}

export interface AccuracyResult {
  accuracy: number;
  loss: number;
  examples: number;
  seconds: number;
  tokensPerSecond: number;
}

export async function accuracy(
  model: ClassifierModel,
  cache: GraphCache,
  examples: readonly TokenizedExample[],
  opts: { batch: number; maxLen: number; padId: number; onProgress?: (done: number, total: number) => void },
): Promise<AccuracyResult> {
  const started = performance.now();
  const weights = model.weightFeeds();
  let correct = 0;
  let nll = 0;
  let tokens = 0;
  // Sorting by length keeps padding (wasted work) small; accuracy does not depend on order.
  const order = [...examples].sort((a, b) => a.ids.length - b.ids.length);
  for (let i = 0; i < order.length; i += opts.batch) {
    const chunk = order.slice(i, i + opts.batch);
    const p = padBatch(chunk, opts.maxLen, opts.padId);
    const compiled = await cache.get(`${model.cacheKey}:cls-score:${p.B}x${p.T}`, () =>
      buildClsScoreGraph(model.config, model.params(new Graph()), model.numLabels, p.B, p.T),
    );
    const out = await compiled.run({ ...weights, [IDS]: { data: p.ids, shape: [p.B, p.T] }, [LAST]: { data: p.last, shape: [p.B] } });
    const logits = out.logits!.data as Float32Array;
    const L = model.numLabels;
    chunk.forEach((e, b) => {
      let best = 0;
      let max = -Infinity;
      let sum = 0;
      for (let l = 0; l < L; l++) max = Math.max(max, logits[b * L + l]!);
      for (let l = 0; l < L; l++) {
        const v = logits[b * L + l]!;
        sum += Math.exp(v - max);
        if (v > logits[b * L + best]!) best = l;
      }
      nll += Math.log(sum) + max - logits[b * L + e.label]!;
      if (best === e.label) correct++;
    });
    tokens += p.tokens;
    opts.onProgress?.(Math.min(i + opts.batch, order.length), order.length);
  }
  const seconds = (performance.now() - started) / 1000;
  return { accuracy: correct / examples.length, loss: nll / examples.length, examples: examples.length, seconds, tokensPerSecond: tokens / seconds };
}
