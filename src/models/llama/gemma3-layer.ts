// Gemma 3's text decoder on the LLaMA graph (arch/llama/gemma3.ts lists what differs): the stack
// (scaled embeddings, layers, final (1 + w) norm) and one layer with its four norms, q/k norms and
// GeGLU. graph.ts branches here once around the stack and once per layer; the attention of each
// layer (its RoPE base and sliding window) comes from gemma3-attention.ts through the same
// LayerAttention callback every LLaMA graph passes.

import { type Value, add, gather, mul, reshape, tanh } from "../../engine/index.js";
import type { ParamSource } from "../../arch/params.js";
import { type LayerShape, type LlamaConfig, layerShape } from "../../arch/llama/config.js";
import { embeddingScale, gemma3QueryFactor } from "../../arch/llama/gemma3.js";

// graph.ts's LayerAttention and NormFn, spelled out here (the same types) because graph.ts imports this file.
/** Attention of layer i: q [B·T, H·D], k and v [B·T, KV·D] (projections, before RoPE) → [B·T, H·D]. */
type LayerAttention = (layer: number, q: Value, k: Value, v: Value, widths: LayerShape) => Value;
/** RMSNorm as the graph computes it (rmsNorm, or rmsNormFused in the KV graph). */
type NormFn = (x: Value, weight: Value, eps: number) => Value;

/** Gemma's RMSNorm: x / rms(x) · (1 + weight), from the graph's norm (differentiable or fused). */
export function onePlusNorm(norm: NormFn): NormFn {
  return (x, weight, eps) => norm(x, add(weight, x.graph.scalar(1, weight.dtype)), eps);
}

/**
 * gelu_pytorch_tanh(gate) · up: 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) · up, from primitive
 * ops so autodiff derives the gradient (test/families/gemma3.test.ts checks it).
 */
export function geluTanhGate(gate: Value, up: Value): Value {
  const g = gate.graph;
  const s = (v: number) => g.scalar(v, gate.dtype);
  const inner = mul(add(gate, mul(mul(mul(gate, gate), gate), s(0.044715))), s(Math.sqrt(2 / Math.PI)));
  return mul(mul(mul(gate, s(0.5)), add(s(1), tanh(inner))), up);
}

/** Embeddings × √hidden (float32, as transformers rounds the normaliser to the weights' dtype) → the layers → the final norm. */
export function gemma3Blocks(config: LlamaConfig, p: ParamSource, ids: Value, attend: LayerAttention, norm: NormFn, checkpoint: boolean): Value {
  const g = p.graph;
  const [B, T] = ids.shape as [number, number];
  const C = config.hiddenSize;
  // A quantized table (ParamSource.embed) when the export made one, else the float rows.
  const rows = p.embed ? p.embed(ids) : gather(p.tensor("model.embed_tokens.weight"), ids);
  const embedded = reshape(rows, [g.dims.mul(B, T), C]); // (B·T, C)
  let x = mul(embedded, g.scalar(embeddingScale(config)));
  for (let i = 0; i < config.numLayers; i++) {
    x = checkpoint ? g.checkpointed(x, (xi) => gemma3Layer(config, p, xi, i, attend, norm)) : gemma3Layer(config, p, x, i, attend, norm);
  }
  return onePlusNorm(norm)(x, p.tensor("model.norm.weight"), config.rmsNormEps);
}

/**
 * Layer i: x + post_attention_norm(attn(input_norm(x))), then + post_feedforward_norm(GeGLU(pre_feedforward_norm(·))).
 * Queries are multiplied by √(head_dim / query_pre_attn_scalar) so the attention's 1/√head_dim
 * becomes Gemma's 1/√query_pre_attn_scalar.
 */
export function gemma3Layer(config: LlamaConfig, p: ParamSource, x: Value, i: number, attend: LayerAttention, baseNorm: NormFn): Value {
  const pre = `model.layers.${i}`;
  const eps = config.rmsNormEps;
  const norm = onePlusNorm(baseNorm);
  const widths = layerShape(config, i);
  const D = config.headDim;
  const perHead = (v: Value, weight: string, heads: number) => {
    const [N, width] = v.shape as [number, number];
    return reshape(norm(reshape(v, [N, heads, D]), p.tensor(weight), eps), [N, width]);
  };
  const h = norm(x, p.tensor(`${pre}.input_layernorm.weight`), eps);
  let q = perHead(p.linear(`${pre}.self_attn.q_proj`, h), `${pre}.self_attn.q_norm.weight`, widths.numHeads);
  const k = perHead(p.linear(`${pre}.self_attn.k_proj`, h), `${pre}.self_attn.k_norm.weight`, widths.numKvHeads);
  const v = p.linear(`${pre}.self_attn.v_proj`, h);
  const factor = gemma3QueryFactor(config);
  if (factor !== 1) q = mul(q, x.graph.scalar(factor, q.dtype));
  const attention = p.linear(`${pre}.self_attn.o_proj`, attend(i, q, k, v, widths)); // (B·T, C)
  const residual = add(x, norm(attention, p.tensor(`${pre}.post_attention_layernorm.weight`), eps));
  const h2 = norm(residual, p.tensor(`${pre}.pre_feedforward_layernorm.weight`), eps);
  const mlp = p.linear(`${pre}.mlp.down_proj`, geluTanhGate(p.linear(`${pre}.mlp.gate_proj`, h2), p.linear(`${pre}.mlp.up_proj`, h2)));
  return add(residual, norm(mlp, p.tensor(`${pre}.post_feedforward_layernorm.weight`), eps));
}
