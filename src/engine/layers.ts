// Transformer building blocks composed from primitive ops, so autodiff derives their gradients:
// RMSNorm, SiLU, rotary embeddings, causal grouped-query attention, cross-entropy; and, for
// generation, attention over a key/value cache with run-time positions and lengths.

import { add, and, equal, less, lessOrEqual, mul, neg, reciprocal, sigmoid, sqrt, sub, where } from "./ops/elementwise.js";
import type { DType } from "./dtype.js";
import type { OpDef, Value } from "./graph.js";
import { matmul } from "./ops/matmul.js";
import { gatherElements, logSoftmax, scatterElementsAdd, softmax } from "./ops/nn.js";
import { cumSum, reduceMean, reduceSum } from "./ops/reduce.js";
import { concat, dimValue, expand, reshape, slice, transpose, transposeLast2 } from "./ops/shape.js";

/**
 * x / sqrt(mean(x², last axis) + eps) · w — LLaMA's RMSNorm, with its gradient written out:
 * with x̂ = x·r, dw = Σ_rows dy·x̂ and dx = r·(dy·w − x̂·mean(dy·w·x̂)), fewer passes over
 * [N, C] than the chain rule through the reduction.
 */
export function rmsNorm(x: Value, weight: Value, eps: number): Value {
  const g = x.graph;
  const meanSquare = reduceMean(mul(x, x), [-1], true);
  const inverseRms = reciprocal(sqrt(add(meanSquare, g.scalar(eps, x.dtype)))); // (N, 1)
  const normed = mul(x, inverseRms);
  const y = mul(normed, weight);
  g.defineVjp(y, [x, weight], (dy) => {
    const dyw = mul(dy, weight);
    const dx = mul(sub(dyw, mul(normed, reduceMean(mul(dyw, normed), [-1], true))), inverseRms);
    const dw = reduceSum(mul(dy, normed), [...Array(x.rank - 1).keys()]);
    return [dx, weight.rank === 1 ? dw : reshape(dw, weight.shape)];
  });
  return y;
}

export function silu(x: Value): Value {
  return mul(x, sigmoid(x));
}

/**
 * SwiGLU's product silu(gate) · up with its gradient written out: d up = dy·silu(gate),
 * d gate = dy·up·s·(1 + gate·(1 − s)) with s = sigmoid(gate).
 */
export function siluGate(gate: Value, up: Value): Value {
  const g = gate.graph;
  const s = sigmoid(gate);
  const act = mul(gate, s);
  const y = mul(act, up);
  g.defineVjp(y, [gate, up], (dy) => {
    const one = g.scalar(1, gate.dtype);
    const slope = mul(s, add(one, mul(gate, sub(one, s))));
    return [mul(mul(dy, up), slope), mul(dy, act)];
  });
  return y;
}

/** The cos/sin tables of rotary embeddings for positions [0, T), as transformers computes them in float32. */
export function ropeTables(positions: number, headDim: number, theta: number, invFreqs?: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(positions * headDim);
  const sin = new Float32Array(positions * headDim);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const invFreq = invFreqs?.[i] ?? f(1 / f(Math.pow(theta, f(f(2 * i) / headDim))));
    for (let t = 0; t < positions; t++) {
      const angle = f(t * invFreq);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * headDim + i] = cos[t * headDim + i + half] = c;
      sin[t * headDim + i] = sin[t * headDim + i + half] = s;
    }
  }
  return { cos, sin };
}

/** x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁] (transformers' convention). x: [..., T, D]. */
export function rope(x: Value, cos: Value, sin: Value): Value {
  const d = x.shape[x.rank - 1]!;
  const x1 = slice(x, -1, 0, d / 2);
  const x2 = slice(x, -1, d / 2, d);
  return add(mul(x, cos), mul(concat([neg(x2), x1], -1), sin));
}

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Causal grouped-query attention. q: [B·T, H·D], k, v: [B·T, KV·D] → [B·T, H·D].
 * Query heads that share a key-value head are stacked along the time axis, so k and v are
 * never repeated: scores are [B, KV, rep·T, T].
 * `keyMask` (optional, additive, [B, 1, 1, T]) hides padding keys. `exampleMask` (optional,
 * additive, [B, 1, T, T]) replaces the causal mask, for rows packed with several examples: it is
 * block-diagonal causal, so a token sees only the earlier tokens of its own example. `rot` tables
 * are [T, D], or [B, 1, T, D] when each row has its own positions (restarting per packed example).
 */
export function causalAttention(
  q: Value,
  k: Value,
  v: Value,
  s: AttentionShape,
  rot: { cos: Value; sin: Value },
  keyMask?: Value,
  exampleMask?: Value,
): Value {
  const g = q.graph;
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  const rep = H / KV;
  const heads = (x: Value, n: number) => transpose(reshape(x, [B, T, n, D]), [0, 2, 1, 3]); // (B, n, T, D)
  const qh = mul(rope(heads(q, H), rot.cos, rot.sin), g.scalar(1 / Math.sqrt(D), q.dtype));
  const kh = rope(heads(k, KV), rot.cos, rot.sin);
  const vh = heads(v, KV);
  const qGrouped = reshape(qh, [B, KV, rep * T, D]);
  const raw = matmul(qGrouped, transposeLast2(kh)); // (B, KV, rep·T, T)
  let scores = exampleMask
    ? reshape(add(reshape(raw, [B, KV, rep, T, T]), reshape(exampleMask, [B, 1, 1, T, T])), [B, KV, rep * T, T])
    : add(raw, causalMask(g, T, rep, q.dtype));
  if (keyMask) scores = add(scores, reshape(keyMask, [B, 1, 1, T]));
  const out = matmul(softmax(scores, -1), vh); // (B, KV, rep·T, D)
  return reshape(transpose(reshape(out, [B, H, T, D]), [0, 2, 1, 3]), [B * T, H * D]);
}

const MASKED = -1e30;

const SimplifiedLayerNormalization: OpDef = { type: "SimplifiedLayerNormalization" };
const RotaryEmbedding: OpDef = { type: "RotaryEmbedding", domain: "com.microsoft" };

/**
 * RMSNorm as ONNX Runtime's single fused kernel (inference only, no gradient): what rmsNorm
 * computes in seven nodes, for graphs run one token at a time where every node's overhead counts.
 */
export function rmsNormFused(x: Value, weight: Value, eps: number): Value {
  return x.graph.add(SimplifiedLayerNormalization, [x, weight], x.shape, x.dtype, { axis: -1, epsilon: { float: eps }, stash_type: 1 });
}

/** Half-width cos/sin tables [positions, D/2] for ONNX Runtime's RotaryEmbedding. */
export function ropeHalfTables(positions: number, headDim: number, theta: number, invFreqs?: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const { cos, sin } = ropeTables(positions, headDim, theta, invFreqs);
  const half = headDim / 2;
  const pick = (t: Float32Array) => {
    const out = new Float32Array(positions * half);
    for (let p = 0; p < positions; p++) out.set(t.subarray(p * headDim, p * headDim + half), p * half);
    return out;
  };
  return { cos: pick(cos), sin: pick(sin) };
}

/**
 * RoPE as ONNX Runtime's fused kernel (com.microsoft.RotaryEmbedding, rotate-half layout):
 * x [B, H, T, D] rotated by the angles at `positions` [B, T], read from tables [maxPos, D/2].
 */
export function ropeFused(x: Value, positions: Value, tables: { cos: Value; sin: Value }): Value {
  return x.graph.add(RotaryEmbedding, [x, positions, tables.cos, tables.sin], x.shape, x.dtype, { interleaved: 0 });
}

/**
 * The additive mask of attention over a cache, [B, 1, 1, T, P + T]: query t (at index P + t) sees
 * key j when j ≤ P + t and `keep` [B, P + T] (int64, 1 = real token, 0 = padding) is 1 at j, and,
 * given a sliding `window`, when (P + t) − j < window. `past` is P, a dim (0 when there is no cache yet).
 */
export function cacheMask(keep: Value, seq: number, past: number, window?: number): Value {
  const g = keep.graph;
  const [B, total] = keep.shape as [number, number];
  const one = g.scalar(1, "int64");
  const index = (x: Value) => sub(cumSum(add(mul(x, g.scalar(0, "int64")), one), 1), one); // 0, 1, … along axis 1
  const keyIndex = reshape(index(keep), [B, 1, total]);
  const queries = add(index(expand(reshape(one, [1, 1]), [B, seq])), dimValue(g, past)); // (B, T): P + t
  const queryIndex = reshape(queries, [B, seq, 1]);
  let visible = and(lessOrEqual(keyIndex, queryIndex), reshape(equal(keep, one), [B, 1, total])); // (B, T, P+T)
  if (window !== undefined) visible = and(visible, less(sub(queryIndex, keyIndex), g.scalar(window, "int64")));
  return reshape(where(visible, g.scalar(0), g.scalar(MASKED)), [B, 1, 1, seq, total]);
}

export interface CachedAttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Grouped-query attention of T new tokens over a key/value cache. q: [B·T, H·D], k, v: [B·T, KV·D]
 * (projections, before RoPE); past: keys (after RoPE) and values [B, KV, P, D], or null before the
 * first token; `rotate` applies RoPE to [B, n, T, D] at the tokens' positions (ropeFused); mask
 * from cacheMask. Returns the output [B·T, H·D] and the cache
 * with the new tokens appended, [B, KV, P + T, D]. Query heads that share a key/value head form one
 * axis of size H / KV, so the cache is never repeated.
 */
export function cachedAttention(
  q: Value,
  k: Value,
  v: Value,
  s: CachedAttentionShape,
  rotate: (x: Value) => Value,
  mask: Value,
  past: { key: Value; value: Value } | null,
): { out: Value; key: Value; value: Value } {
  const g = q.graph;
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  const rep = H / KV;
  const heads = (x: Value, n: number) => transpose(reshape(x, [B, T, n, D]), [0, 2, 1, 3]); // (B, n, T, D)
  const qh = mul(rotate(heads(q, H)), g.scalar(1 / Math.sqrt(D), q.dtype));
  const key = past ? concat([past.key, rotate(heads(k, KV))], 2) : rotate(heads(k, KV)); // (B, KV, P+T, D)
  const value = past ? concat([past.value, heads(v, KV)], 2) : heads(v, KV);
  const total = key.shape[2]!;
  const q5 = reshape(qh, [B, KV, rep, T, D]);
  const k5 = reshape(key, [B, KV, 1, total, D]);
  const v5 = reshape(value, [B, KV, 1, total, D]);
  const scores = add(matmul(q5, transposeLast2(k5)), mask); // (B, KV, rep, T, P+T)
  const out = reshape(matmul(softmax(scores, -1), v5), [B, H, T, D]);
  return { out: reshape(transpose(out, [0, 2, 1, 3]), [g.dims.mul(B, T), H * D]), key, value };
}

function causalMask(g: Value["graph"], T: number, rep: number, dtype: DType): Value {
  const data = dtype === "float64" ? new Float64Array(rep * T * T) : new Float32Array(rep * T * T);
  for (let r = 0; r < rep; r++) {
    for (let i = 0; i < T; i++) {
      const row = (r * T + i) * T;
      for (let j = i + 1; j < T; j++) data[row + j] = MASKED;
    }
  }
  return g.constant(data, [rep * T, T], dtype);
}

/**
 * Mean negative log-likelihood over rows, with the gradient written directly as
 * (softmax(logits) − onehot(targets)) · dy/N: three passes over [N, V] instead of the chain
 * rule's seven (the logits are the largest tensor of a language model's step).
 */
export function crossEntropyMean(logits: Value, targets: Value): Value {
  const g = logits.graph;
  const n = logits.shape[0]!;
  const loss = reshape(reduceMean(crossEntropy(logits, targets), [0]), []);
  g.defineVjp(loss, [logits], (dy) => {
    const perRow = mul(dy, g.scalar(1 / n, dy.dtype)); // scalar
    const probs = mul(softmax(logits, -1), perRow);
    const idx = reshape(targets, [n, 1]);
    return [scatterElementsAdd(probs, idx, expand(reshape(neg(perRow), [1, 1]), [n, 1]), 1)];
  });
  return loss;
}

/**
 * Σ weights[i] · nll(targets[i]) over rows, with the gradient written directly as
 * (softmax(logits) − onehot(targets)) · weights · dy, as crossEntropyMean's. Weights that are
 * 1 / (answer tokens) on answer tokens and 0 elsewhere give the mean loss over the answers only.
 */
export function crossEntropyWeighted(logits: Value, targets: Value, weights: Value): Value {
  const g = logits.graph;
  const n = logits.shape[0]!;
  const loss = reshape(reduceSum(mul(crossEntropy(logits, targets), weights), [0]), []);
  g.defineVjp(loss, [logits], (dy) => {
    const perRow = reshape(mul(weights, dy), [n, 1]);
    const probs = mul(softmax(logits, -1), perRow);
    return [scatterElementsAdd(probs, reshape(targets, [n, 1]), neg(perRow), 1)];
  });
  return loss;
}

/** Per-row negative log-likelihood of `targets` ([N] int64) under `logits` ([N, V]). */
export function crossEntropy(logits: Value, targets: Value): Value {
  const n = logits.shape[0]!;
  const logProbs = logSoftmax(logits, -1);
  const picked = gatherElements(logProbs, reshape(targets, [n, 1]), 1);
  return neg(reshape(picked, [n]));
}
