// How far a compressed model's predictions are from a reference (its float original): over the
// same non-overlapping windows as perplexity, the mean KL(reference ‖ model) per predicted token in
// nats, top-1 agreement (the share of positions whose argmax matches), and both perplexities. This
// is how compression without training is judged: on an out-of-domain text quantization noise can
// lower perplexity, but it always moves the model away from the reference (llama.cpp's
// --kl-divergence reports the same quantities).

import { evalWindows } from "../data/text-batches.js";
import { type GraphCache, Graph } from "../engine/index.js";
import { buildLmLogProbGraph, IDS } from "../models/llama/lm-graphs.js";
import type { ScoringModel } from "../models/scoring.js";
import { SlimtuneError } from "../core/errors.js";

export interface KlResult {
  /** Mean KL(reference ‖ model) per predicted token, nats. */
  meanKl: number;
  /** Share of predicted positions where both models' most likely next token is the same. */
  top1Agreement: number;
  perplexity: number;
  referencePerplexity: number;
  /** perplexity − referencePerplexity. */
  deltaPerplexity: number;
  /** 99th percentile of the per-token KL (the tail that a mean hides). */
  klP99: number;
  tokens: number;
  windows: number;
  seconds: number;
}

export interface KlOptions {
  ctx: number;
  /** Windows per run; the default keeps each run's log-probabilities near 64 MB per model. */
  batch?: number;
  onProgress?: (doneWindows: number, totalWindows: number) => void;
}

export async function klToReference(
  model: ScoringModel,
  reference: ScoringModel,
  caches: { model: GraphCache; reference: GraphCache },
  tokens: Int32Array,
  opts: KlOptions,
): Promise<KlResult> {
  if (model.config.vocabSize !== reference.config.vocabSize) {
    throw new SlimtuneError(
      "E_CONFIG",
      `the reference has a vocabulary of ${reference.config.vocabSize} tokens, the model ${model.config.vocabSize}; KL needs both to predict over the same tokens — pass the float model this one was made from as --reference`,
    );
  }
  for (const key of ["bosTokenId", "eosTokenId"] as const) {
    const a = reference.config[key];
    const b = model.config[key];
    if (a !== undefined && b !== undefined && a !== b) {
      throw new SlimtuneError(
        "E_CONFIG",
        `the reference's ${key === "bosTokenId" ? "bos_token_id" : "eos_token_id"} is ${a}, the model's ${b}: they come from different tokenizer configurations, so their predictions are not comparable — pass the float model this one was made from as --reference`,
      );
    }
  }
  const started = performance.now();
  const V = model.config.vocabSize;
  const windows = evalWindows(tokens, opts.ctx);
  const maxBatch = Math.max(1, opts.batch ?? Math.floor(16_777_216 / (opts.ctx * V)));
  const modelFeeds = model.weightFeeds();
  const refFeeds = reference.weightFeeds();
  const kls: number[] = [];
  let klSum = 0;
  let agree = 0;
  let nll = 0;
  let refNll = 0;
  let predicted = 0;
  let done = 0;
  for (let i = 0; i < windows.length; ) {
    const length = windows[i]!.length;
    let j = i;
    while (j < windows.length && j - i < maxBatch && windows[j]!.length === length) j++;
    const chunk = windows.slice(i, j);
    i = j;
    const B = chunk.length;
    const T = length - 1;
    const ids = new BigInt64Array(B * T);
    chunk.forEach((w, b) => {
      for (let t = 0; t < T; t++) ids[b * T + t] = BigInt(tokens[w.start + t]!);
    });
    const feed = { [IDS]: { data: ids, shape: [B, T] } };
    const run = async (m: ScoringModel, cache: GraphCache, weights: typeof modelFeeds) => {
      const compiled = await cache.get(`${m.cacheKey}:logprobs:${B}x${T}`, () => buildLmLogProbGraph(m.config, m.params(new Graph()), B, T));
      return (await compiled.run({ ...weights, ...feed })).logprobs!.data as Float32Array;
    };
    const lq = await run(model, caches.model, modelFeeds);
    const lp = await run(reference, caches.reference, refFeeds);
    chunk.forEach((w, b) => {
      for (let t = 0; t < T; t++) {
        const row = (b * T + t) * V;
        let kl = 0;
        let bestP = 0;
        let bestQ = 0;
        for (let v = 0; v < V; v++) {
          const a = lp[row + v]!;
          const q = lq[row + v]!;
          kl += Math.exp(a) * (a - q);
          if (a > lp[row + bestP]!) bestP = v;
          if (q > lq[row + bestQ]!) bestQ = v;
        }
        // Rounding can leave a tiny negative sum when the two distributions are equal.
        kl = Math.max(0, kl);
        kls.push(kl);
        klSum += kl;
        if (bestP === bestQ) agree++;
        const target = tokens[w.start + t + 1]!;
        nll -= lq[row + target]!;
        refNll -= lp[row + target]!;
      }
    });
    predicted += B * T;
    done += B;
    opts.onProgress?.(done, windows.length);
  }
  kls.sort((a, b) => a - b);
  const perplexity = Math.exp(nll / predicted);
  const referencePerplexity = Math.exp(refNll / predicted);
  return {
    meanKl: klSum / predicted,
    top1Agreement: agree / predicted,
    perplexity,
    referencePerplexity,
    deltaPerplexity: perplexity - referencePerplexity,
    klP99: kls[Math.min(kls.length - 1, Math.floor(0.99 * kls.length))] ?? 0,
    tokens: predicted,
    windows: windows.length,
    seconds: (performance.now() - started) / 1000,
  };
}
