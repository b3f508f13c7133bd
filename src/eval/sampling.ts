// Choosing the next token from logits, with transformers' processors in transformers' order:
// repetition penalty → temperature → top-k → top-p → draw. Temperature 0 is greedy (argmax, the
// first of equal maxima, as torch.argmax).

import type { Rng } from "../core/rng.js";

export interface SamplingOptions {
  /** 0 = greedy; otherwise logits are divided by it before softmax. */
  temperature: number;
  /** Keep only the k most likely tokens (0 = all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** > 1 discourages tokens already in the context: positive logits ÷ r, negative × r (CTRL). */
  repetitionPenalty?: number;
}

/** The next token id given the last position's logits [V] and every token so far. */
export function nextToken(logits: Float32Array, context: readonly number[], opts: SamplingOptions, rng: Rng): number {
  const penalty = opts.repetitionPenalty ?? 1;
  let scores: Float32Array = logits;
  if (penalty !== 1) {
    scores = Float32Array.from(logits);
    for (const id of new Set(context)) {
      const s = scores[id]!;
      scores[id] = s > 0 ? s / penalty : s * penalty;
    }
  }
  if (opts.temperature === 0) return argmax(scores);

  // Candidates by descending score; top-k and top-p cut this list.
  let order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
  const k = opts.topK ?? 0;
  if (k > 0 && k < order.length) order = order.slice(0, k);
  const max = scores[order[0]!]!;
  const weights = order.map((id) => Math.exp((scores[id]! - max) / opts.temperature));
  const total = weights.reduce((s, w) => s + w, 0);
  const p = opts.topP ?? 1;
  let keep = order.length;
  if (p < 1) {
    let cumulative = 0;
    for (let i = 0; i < order.length; i++) {
      cumulative += weights[i]! / total;
      if (cumulative >= p) {
        keep = i + 1;
        break;
      }
    }
  }
  const kept = weights.slice(0, keep).reduce((s, w) => s + w, 0);
  let u = rng.uniform() * kept;
  for (let i = 0; i < keep; i++) {
    u -= weights[i]!;
    if (u < 0) return order[i]!;
  }
  return order[keep - 1]!;
}

export function argmax(xs: Float32Array): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}
