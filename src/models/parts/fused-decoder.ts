// The LLaMA-family decoder for generation with ONNX Runtime's fused kernels (parts/fused-ops.ts):
// each layer's attention is one GroupQueryAttention (RoPE, the cache append, the causal softmax),
// and each residual Add with the RMSNorm after it is one SkipSimplifiedLayerNormalization. The
// math is llamaLayer's (models/llama/graph.ts) — norm → q/k/v (+ Qwen3's per-head q/k norms) →
// attention → o_proj → residual → norm → SwiGLU → residual — with the same weights and names, so
// the kv-graph test holds it to the portable graph's logits. Families and shapes the kernels
// cannot express keep the portable graph (fusedDecoderFits).

import { type Value, gather, reshape, rmsNormFused, siluGate } from "../../engine/index.js";
import { type LayerShape, type LlamaConfig, isGpt2, layerShape } from "../../arch/llama/config.js";
import { windowBinds } from "../../arch/llama/window.js";
import type { ParamSource } from "../../arch/params.js";
import { skipRmsNorm } from "./fused-ops.js";
import { QuantizedParams } from "./quantized-params.js";

/**
 * Whether GroupQueryAttention can run `config`'s attention: not Gemma 3 (per-layer RoPE, query
 * scale, four norms), GPT-2 (no RoPE, LayerNorm) or fused projections (phi3); no sliding window
 * that hides a key within the context; a head size the kernel's RoPE takes (a multiple of 16); and
 * whole key/value groups in every layer.
 */
export function fusedDecoderFits(config: LlamaConfig): boolean {
  if (config.gemma3 || isGpt2(config) || config.fusedProjections) return false;
  if (config.hiddenAct !== "silu" || config.headDim % 16 !== 0) return false;
  if (windowBinds(config, config.maxPositionEmbeddings)) return false;
  for (let i = 0; i < config.numLayers; i++) {
    const w = layerShape(config, i);
    if (w.numHeads > 0 && (w.numKvHeads === 0 || w.numHeads % w.numKvHeads !== 0)) return false;
  }
  return true;
}

/**
 * Attention of layer i: q [..., H·D], k and v [..., KV·D] before RoPE → [..., H·D], where rows are
 * [B·T] or, when every linear layer takes them (fusedLlamaBlocks), [B, T].
 */
export type FusedAttention = (layer: number, q: Value, k: Value, v: Value, widths: LayerShape) => Value;

/** The module paths of layer i's linear layers that the block applies. */
function layerLinears(config: LlamaConfig, i: number): string[] {
  const w = layerShape(config, i);
  const pre = `model.layers.${i}`;
  return [
    ...(w.numHeads > 0 ? ["q_proj", "k_proj", "v_proj", "o_proj"].map((m) => `${pre}.self_attn.${m}`) : []),
    ...(w.intermediateSize > 0 ? ["gate_proj", "up_proj", "down_proj"].map((m) => `${pre}.mlp.${m}`) : []),
  ];
}

/**
 * Embeddings → the decoder layers → the final RMSNorm: hidden states [B·T, C] for ids [B, T]. When
 * every linear layer is a MatMulNBits (which takes [B, T, K]), the stream stays [B, T, C] from the
 * embedding to the last norm, and the reshapes around each attention (four nodes a layer) go away.
 */
export function fusedLlamaBlocks(config: LlamaConfig, p: ParamSource, ids: Value, attend: FusedAttention): Value {
  const g = p.graph;
  const [B, T] = ids.shape as [number, number];
  const eps = config.rmsNormEps;
  const C = config.hiddenSize;
  const rows = p.embed ? p.embed(ids) : gather(p.tensor("model.embed_tokens.weight"), ids); // (B, T, C)
  const anyRank = p instanceof QuantizedParams && Array.from({ length: config.numLayers }, (_, i) => layerLinears(config, i)).flat().every((path) => p.takesRowsOfAnyRank(path));
  let x = anyRank ? rows : reshape(rows, [g.dims.mul(B, T), C]); // the residual stream
  // A sub-block's output waits here until the next norm adds it to the stream in the same kernel.
  let pending: Value | null = null;
  const normed = (weight: string, last = false): Value => {
    const w = p.tensor(weight);
    if (!pending) return rmsNormFused(x, w, eps);
    const { norm, sum } = skipRmsNorm(x, pending, w, eps, !last);
    pending = null;
    if (sum) x = sum;
    return norm;
  };
  for (let i = 0; i < config.numLayers; i++) {
    const pre = `model.layers.${i}`;
    const widths = layerShape(config, i);
    // A pruned layer may have lost every head or every MLP channel: its sub-block adds nothing.
    if (widths.numHeads > 0) {
      const h = normed(`${pre}.input_layernorm.weight`);
      let q = p.linear(`${pre}.self_attn.q_proj`, h);
      let k = p.linear(`${pre}.self_attn.k_proj`, h);
      if (config.qkNorm) {
        q = perHeadNorm(q, p.tensor(`${pre}.self_attn.q_norm.weight`), widths.numHeads, config);
        k = perHeadNorm(k, p.tensor(`${pre}.self_attn.k_norm.weight`), widths.numKvHeads, config);
      }
      const v = p.linear(`${pre}.self_attn.v_proj`, h);
      pending = p.linear(`${pre}.self_attn.o_proj`, attend(i, q, k, v, widths));
    }
    if (widths.intermediateSize > 0) {
      const h = normed(`${pre}.post_attention_layernorm.weight`);
      pending = p.linear(`${pre}.mlp.down_proj`, siluGate(p.linear(`${pre}.mlp.gate_proj`, h), p.linear(`${pre}.mlp.up_proj`, h)));
    }
  }
  const hidden = normed("model.norm.weight", true);
  return anyRank ? reshape(hidden, [g.dims.mul(B, T), C]) : hidden;
}

/** Qwen3's q/k norm: x [..., heads·D] RMS-normalised head by head over its D values. */
function perHeadNorm(x: Value, weight: Value, heads: number, config: LlamaConfig): Value {
  const rows = x.shape.slice(0, -1);
  return reshape(rmsNormFused(reshape(x, [...rows, heads, config.headDim]), weight, config.rmsNormEps), x.shape);
}
