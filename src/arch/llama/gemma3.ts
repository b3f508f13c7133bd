// Gemma 3's text decoder (transformers' Gemma3ForCausalLM, model_type "gemma3_text") as options on
// the LLaMA family: what differs is held here, the rest (projections, GQA, RoPE layout, names) is
// LLaMA's. Per transformers' modeling_gemma3.py:
//  - embeddings are multiplied by √hidden_size (rounded to the weights' dtype, float32 here);
//  - every RMSNorm scales by (1 + weight), not weight;
//  - each block has four norms: input, post-attention (on the attention output, before the
//    residual add), pre-feed-forward and post-feed-forward, plus q/k norms over each head;
//  - the MLP is GeGLU with tanh-approximated GELU (hidden_activation "gelu_pytorch_tanh");
//  - layers are "sliding_attention" (a window of `sliding_window` tokens, RoPE base
//    rope_local_base_freq) or "full_attention" (RoPE base rope_theta, with rope_scaling's linear
//    factor when there is one);
//  - attention scores are scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5.

import type { Gemma3Options, LlamaConfig } from "./config.js";

export type { Gemma3Options } from "./config.js";

/** The Gemma options of a config that has them; an Error for any other (a caller's bug). */
export function gemma3Of(config: LlamaConfig): Gemma3Options {
  if (!config.gemma3) throw new Error(`a ${config.modelType} model has no Gemma 3 options`);
  return config.gemma3;
}

/** Whether layer i attends within the sliding window. */
export const isSlidingLayer = (config: LlamaConfig, i: number): boolean => gemma3Of(config).slidingLayers[i] === true;

/** The RoPE of layer i as ropeInvFreq reads it: the local base on sliding layers, the global base (and linear factor) on the others. */
export function gemma3LayerRope(config: LlamaConfig, i: number): { headDim: number; ropeTheta: number; linearFactor: number } {
  const o = gemma3Of(config);
  return isSlidingLayer(config, i)
    ? { headDim: config.headDim, ropeTheta: o.localRopeTheta, linearFactor: 1 }
    : { headDim: config.headDim, ropeTheta: config.ropeTheta, linearFactor: o.globalRopeFactor };
}

/**
 * The inverse frequencies of layer i in float32, as transformers computes them: θ^(−2i/D), divided
 * by the linear factor on full-attention layers (linear scaling divides positions, i.e. frequencies).
 */
export function gemma3InvFreq(config: LlamaConfig, i: number): Float32Array {
  const f = Math.fround;
  const { headDim: D, ropeTheta, linearFactor } = gemma3LayerRope(config, i);
  return Float32Array.from({ length: D / 2 }, (_, j) => {
    const inv = f(1 / f(Math.pow(ropeTheta, f(f(2 * j) / D))));
    return linearFactor === 1 ? inv : f(inv / linearFactor);
  });
}

/**
 * The factor the graph multiplies queries by so that the engine's 1/√head_dim becomes
 * 1/√query_pre_attn_scalar: √(head_dim / query_pre_attn_scalar), exactly 1 when they are equal
 * (every released Gemma 3 but 27B).
 */
export function gemma3QueryFactor(config: LlamaConfig): number {
  return Math.sqrt(config.headDim / gemma3Of(config).queryPreAttnScalar);
}

/**
 * llama.cpp's `gemma3` has no query_pre_attn_scalar key: it scales by 1/√head_dim, except for the
 * 62-layer 27B, where it uses hidden_size / heads. The value it will use for this config.
 */
export function llamaCppQueryScalar(config: LlamaConfig): number {
  return config.numLayers === 62 ? config.hiddenSize / config.numHeads : config.headDim;
}

/**
 * The layer pattern as llama.cpp's `gemma3.attention.sliding_window_pattern` (n): layer i is
 * sliding when i mod n < n − 1; 0 means every layer is sliding. null when every layer is global
 * (no window key at all), undefined when the layers follow no such period (llama.cpp cannot
 * express them).
 */
export function slidingPeriod(config: LlamaConfig): number | null | undefined {
  const sliding = gemma3Of(config).slidingLayers;
  if (sliding.every((s) => !s)) return null;
  if (sliding.every((s) => s)) return 0;
  const n = sliding.indexOf(false) + 1;
  return sliding.every((s, i) => s === i % n < n - 1) ? n : undefined;
}

/**
 * What the embedding rows are multiplied by before the first layer: √hidden_size in float32 for
 * Gemma 3 (transformers rounds the normaliser to the weights' dtype), 1 for every other family.
 */
export function embeddingScale(config: Pick<LlamaConfig, "gemma3" | "hiddenSize">): number {
  return config.gemma3 ? Math.fround(Math.sqrt(config.hiddenSize)) : 1;
}
