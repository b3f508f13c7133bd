// Perplexity over a token stream: non-overlapping windows of `ctx` tokens, each predicting its
// tokens 2..L from the ones before, batched through one cached scoring graph per shape.

import { evalWindows } from "../data/text-batches.js";
import { type GraphCache, Graph } from "../engine/index.js";
import { buildLmScoreGraph, IDS, TARGETS } from "../models/llama/lm-graphs.js";
import type { ScoringModel } from "../models/scoring.js";

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood per predicted token (nats). */
  meanNll: number;
  /** Predicted tokens (each window of L tokens predicts L − 1). */
  tokens: number;
  windows: number;
  seconds: number;
}

export interface PerplexityOptions {
  ctx: number;
  /** Windows per run; larger batches use the cores better. */
  batch?: number;
  onProgress?: (doneWindows: number, totalWindows: number) => void;
}

export async function perplexity(model: ScoringModel, cache: GraphCache, tokens: Int32Array, opts: PerplexityOptions): Promise<PerplexityResult> {
  const started = performance.now();
  const windows = evalWindows(tokens, opts.ctx);
  const maxBatch = Math.max(1, opts.batch ?? 8);
  let nllSum = 0;
  let predicted = 0;
  let done = 0;
  const weights = model.weightFeeds();

  // Windows of equal length share a graph; only the tail chunk and the short last window differ.
  const byLength = new Map<number, Array<{ start: number; length: number }>>();
  for (const w of windows) {
    const group = byLength.get(w.length);
    if (group) group.push(w);
    else byLength.set(w.length, [w]);
  }
  for (const [length, group] of byLength) {
    const T = length - 1;
    for (let i = 0; i < group.length; i += maxBatch) {
      const chunk = group.slice(i, i + maxBatch);
      const B = chunk.length;
      const compiled = await cache.get(`${model.cacheKey}:score:${B}x${T}`, () =>
        buildLmScoreGraph(model.config, model.params(new Graph()), B, T),
      );
      const ids = new BigInt64Array(B * T);
      const targets = new BigInt64Array(B * T);
      chunk.forEach((w, b) => {
        for (let t = 0; t < T; t++) {
          ids[b * T + t] = BigInt(tokens[w.start + t]!);
          targets[b * T + t] = BigInt(tokens[w.start + t + 1]!);
        }
      });
      const out = await compiled.run({ ...weights, [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } });
      const nll = out.nll!.data as Float32Array;
      for (let j = 0; j < nll.length; j++) nllSum += nll[j]!;
      predicted += B * T;
      done += B;
      opts.onProgress?.(done, windows.length);
    }
  }
  const meanNll = nllSum / predicted;
  return { perplexity: Math.exp(meanNll), meanNll, tokens: predicted, windows: windows.length, seconds: (performance.now() - started) / 1000 };
}
