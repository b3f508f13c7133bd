// Gemma 3 in GGUF as llama.cpp's `gemma3` architecture reads it (src/models/gemma3.cpp and the
// converter's Gemma3Model): transformers' tensor names mapped to llama.cpp's four block norms,
// every norm weight stored as 1 + w (llama.cpp's RMSNorm multiplies by the stored weight, Gemma's
// by 1 + w), and the keys of its sliding window, layer pattern, local RoPE base and linear scaling.

import type { LlamaConfig } from "../../arch/llama/config.js";
import { gemma3Of, llamaCppQueryScalar, slidingPeriod } from "../../arch/llama/gemma3.js";
import { SlimtuneError } from "../../core/errors.js";
import type { GgufValue } from "./writer.js";

/** Gemma 3's block norms by their transformers leaf name → llama.cpp's (post_attention_layernorm is not LLaMA's ffn_norm here). */
export const GEMMA3_NORM_TENSORS: Readonly<Record<string, string>> = {
  "post_attention_layernorm.weight": "post_attention_norm.weight",
  "pre_feedforward_layernorm.weight": "ffn_norm.weight",
  "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
};

/** Whether a tensor is stored shifted by one in a gemma3 GGUF (every RMSNorm weight, as the converter does). */
export const isShiftedNorm = (hfName: string): boolean => hfName.endsWith("norm.weight");

/** w + 1: a Gemma norm weight as llama.cpp's gemma3 reads it. */
export function shiftNorm(data: Float32Array): Float32Array {
  return data.map((w) => w + 1);
}

/**
 * What llama.cpp's gemma3 cannot express is refused before anything is written: a query scale
 * other than the one it derives, layer patterns that are not "every n-th layer global".
 */
export function assertGemma3Writable(config: LlamaConfig): void {
  const o = gemma3Of(config);
  const scalar = llamaCppQueryScalar(config);
  if (o.queryPreAttnScalar !== scalar) {
    throw new SlimtuneError("E_ARG", `query_pre_attn_scalar ${o.queryPreAttnScalar} cannot be written to GGUF: llama.cpp's gemma3 has no key for it and scales by 1/√${scalar} for this model; export it with --format onnx`);
  }
  if (slidingPeriod(config) === undefined) {
    throw new SlimtuneError("E_ARG", "this model's layer_types are not \"every n-th layer full attention\", the only pattern llama.cpp's gemma3 reads (attention.sliding_window_pattern); export it with --format onnx");
  }
}

/** The gemma3.* keys llama.cpp reads beyond the LLaMA ones (llamaHyperparameters). */
export function gemma3Hyperparameters(config: LlamaConfig): Array<[string, GgufValue]> {
  const o = gemma3Of(config);
  const period = slidingPeriod(config);
  const out: Array<[string, GgufValue]> = [];
  // Without a window key llama.cpp attends fully in every layer with the global RoPE base.
  if (period !== null && period !== undefined && config.slidingWindow !== undefined) {
    out.push(["gemma3.attention.sliding_window", { type: "u32", value: config.slidingWindow }]);
    out.push(["gemma3.attention.sliding_window_pattern", { type: "u32", value: period }]);
    out.push(["gemma3.rope.freq_base_swa", { type: "f32", value: o.localRopeTheta }]);
  }
  if (o.globalRopeFactor !== 1) {
    out.push(["gemma3.rope.scaling.type", { type: "string", value: "linear" }]);
    out.push(["gemma3.rope.scaling.factor", { type: "f32", value: o.globalRopeFactor }]);
  }
  return out;
}

/** w − 1: a gemma3 GGUF's stored norm weight back as transformers' Gemma weight. */
export function unshiftNorm(data: Float32Array): Float32Array {
  return data.map((w) => w - 1);
}

/**
 * The gemma3_text config.json fields of a gemma3 GGUF, from the keys llama.cpp reads (with its
 * defaults: pattern 6, local base 10000, no window key = full attention everywhere) and the query
 * scale it derives. `num` reads a gemma3.* number (undefined when absent).
 */
export function gemma3ConfigFields(num: (key: string) => number | undefined, str: (key: string) => unknown, layers: number, hidden: number, heads: number, headDim: number): Record<string, unknown> {
  const window = num("attention.sliding_window");
  const period = window !== undefined && window > 0 ? (num("attention.sliding_window_pattern") ?? 6) : null;
  const sliding = (i: number) => period !== null && (period === 0 || i % period < period - 1);
  const scaling = str("rope.scaling.type");
  const factor = num("rope.scaling.factor");
  return {
    architectures: ["Gemma3ForCausalLM"],
    model_type: "gemma3_text",
    hidden_activation: "gelu_pytorch_tanh",
    sliding_window: window !== undefined && window > 0 ? window : 4096,
    layer_types: Array.from({ length: layers }, (_, i) => (sliding(i) ? "sliding_attention" : "full_attention")),
    rope_local_base_freq: num("rope.freq_base_swa") ?? 10000,
    rope_scaling: scaling === "linear" && factor !== undefined ? { rope_type: "linear", factor } : null,
    query_pre_attn_scalar: layers === 62 ? hidden / heads : headDim,
    final_logit_softcapping: num("final_logit_softcapping") ?? null,
  };
}
