// GPT-2's two ops that the LLaMA family does not have, composed from primitive ops so autodiff
// derives their gradients (checked against finite differences in test/families/gpt2.test.ts).

import { type OpDef, type Value, add, mul, reciprocal, reduceMean, sqrt, sub, tanh } from "../../engine/index.js";

/** LayerNorm as the graph computes it: layerNorm (differentiable) or layerNormFused (inference). */
export type LayerNormFn = (x: Value, weight: Value, bias: Value, eps: number) => Value;

/** LayerNorm over the last axis with weight and bias: (x − mean) / √(var + eps) · w + b, var biased (torch's). */
export function layerNorm(x: Value, weight: Value, bias: Value, eps: number): Value {
  const g = x.graph;
  const centred = sub(x, reduceMean(x, [-1], true));
  const variance = reduceMean(mul(centred, centred), [-1], true);
  const normed = mul(centred, reciprocal(sqrt(add(variance, g.scalar(eps, x.dtype)))));
  return add(mul(normed, weight), bias);
}

const LayerNormalization: OpDef = { type: "LayerNormalization" };

/**
 * LayerNorm as ONNX's single LayerNormalization node (inference only, no gradient), float32
 * statistics: for the KV-cache graph, run one token at a time, where each node's overhead counts.
 */
export function layerNormFused(x: Value, weight: Value, bias: Value, eps: number): Value {
  return x.graph.add(LayerNormalization, [x, weight, bias], x.shape, x.dtype, { axis: -1, epsilon: { float: eps }, stash_type: 1 });
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** transformers' gelu_new (GPT-2's activation): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluTanh(x: Value): Value {
  const g = x.graph;
  const c = (v: number) => g.scalar(v, x.dtype);
  const inner = mul(c(SQRT_2_OVER_PI), add(x, mul(c(0.044715), mul(x, mul(x, x)))));
  return mul(mul(c(0.5), x), add(c(1), tanh(inner)));
}
