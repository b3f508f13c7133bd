// Accuracy (and mean loss) of a classifier over a labelled set, in length-sorted padded batches.

import { padBatch } from "../data/cls-batches.js";
import type { TokenizedExample } from "../data/examples.js";
import { type GraphCache, Graph } from "../engine/index.js";
import { buildClsScoreGraph, LAST } from "../models/llama/cls-graphs.js";
import { IDS } from "../models/llama/lm-graphs.js";
import type { ClassifierModel } from "../models/scoring.js";

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
