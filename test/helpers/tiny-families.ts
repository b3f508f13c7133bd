// Tiny random-initialised models of the families slimtune reads, built from a seed: each real
// model's config.json with its widths scaled down (the other fields copied), ref-llama-5m's
// tokenizer (vocabulary 4096). Weights are drawn large enough that logits are far from ties, and
// norm weights away from 1 so that each norm's weight matters.

import { Rng } from "../../src/core/rng.js";
import * as E from "../../src/engine/index.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { llamaHidden, llamaLogits } from "../../src/models/llama/graph.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { llamaParamShapes } from "../../src/arch/llama/shapes.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { Generator } from "../../src/eval/generate.js";
import { generationScoring } from "../../src/export/deploy.js";
import type { TextTokenizer } from "../../src/formats/tokenizer.js";
import type { LoadedBase } from "../../src/models/load.js";
import { REF_MODEL } from "./paths.js";

/** Qwen/Qwen3-0.6B's config.json, widths scaled down; head_dim · heads ≠ hidden_size, as in the real model (128 · 16 vs 1024). */
export const QWEN3_TINY_CONFIG = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 4095,
  eos_token_id: 4095,
  head_dim: 32,
  hidden_act: "silu",
  hidden_size: 64,
  initializer_range: 0.02,
  intermediate_size: 192,
  max_position_embeddings: 512,
  max_window_layers: 2,
  model_type: "qwen3",
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: true,
  torch_dtype: "float32",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 4096,
};

/**
 * A model of `configJson` with seeded random weights: matrices N(0, 1/fan_in), embeddings N(0, 1),
 * norms 1 + N(0, 0.2). Gemma 3 scales by 1 + weight, so its norms are N(0, 0.2) (the same scales),
 * and its tied embeddings N(0, 0.25): they are also its output head, and at N(0, 1) every next-token
 * distribution has one token at p ≈ 1, which would leave the comparisons with llama.cpp nothing to compare.
 */
export function randomModel(configJson: Record<string, unknown>, seed: number): LlamaModel {
  const config = parseLlamaConfig(configJson, "tiny config.json");
  const gemma = config.gemma3 !== undefined;
  const rng = new Rng(seed);
  const weights = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight") || /\.ln_\w+\.weight$/.test(name)) {
      rng.fillNormal(data, 0.2);
      if (!gemma) for (let i = 0; i < data.length; i++) data[i]! += 1;
    } else if (name.endsWith("bias")) {
      rng.fillNormal(data, 0.1);
    } else if (name === "model.embed_tokens.weight" || name === "lm_head.weight" || name === "transformer.wte.weight" || name === "transformer.wpe.weight") {
      rng.fillNormal(data, gemma ? 0.25 : 1);
    } else {
      rng.fillNormal(data, 1 / Math.sqrt(shape[1]!));
    }
    weights.set(name, { data, shape });
  }
  return new LlamaModel(config, weights, REF_MODEL);
}

/** Writes the tiny model as a Hugging Face folder (config.json, model.safetensors, ref-llama-5m's tokenizer files). */
export function saveRandomModel(configJson: Record<string, unknown>, seed: number, dir: string): LlamaModel {
  const model = randomModel(configJson, seed);
  model.save(dir);
  return LlamaModel.load(dir);
}

/** microsoft/Phi-3-mini-4k-instruct's config.json, widths scaled down (multi-head attention as the real one; untied). */
export const PHI3_TINY_CONFIG = {
  architectures: ["Phi3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 4095,
  embd_pdrop: 0.0,
  eos_token_id: 4095,
  hidden_act: "silu",
  hidden_size: 96,
  initializer_range: 0.02,
  intermediate_size: 256,
  max_position_embeddings: 512,
  model_type: "phi3",
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 4,
  original_max_position_embeddings: 512,
  pad_token_id: 4095,
  resid_pdrop: 0.0,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  sliding_window: 255,
  tie_word_embeddings: false,
  torch_dtype: "float32",
  use_cache: true,
  vocab_size: 4096,
};

/** openai-community/gpt2's config.json, widths scaled down (tied head, as GPT2LMHeadModel; n_inner null → 4 · n_embd). */
export const GPT2_TINY_CONFIG = {
  activation_function: "gelu_new",
  architectures: ["GPT2LMHeadModel"],
  attn_pdrop: 0.1,
  bos_token_id: 4095,
  embd_pdrop: 0.1,
  eos_token_id: 4095,
  initializer_range: 0.02,
  layer_norm_epsilon: 1e-5,
  model_type: "gpt2",
  n_ctx: 128,
  n_embd: 64,
  n_head: 4,
  n_inner: null,
  n_layer: 2,
  n_positions: 128,
  resid_pdrop: 0.1,
  summary_activation: null,
  summary_first_dropout: 0.1,
  summary_proj_to_labels: true,
  summary_type: "cls_index",
  summary_use_proj: true,
  task_specific_params: { "text-generation": { do_sample: true, max_length: 50 } },
  vocab_size: 4096,
};

/** slimtune's log-probabilities of the next token after each prefix of `ids`, [T][V]. */
export async function slimtuneLogProbs(model: LlamaModel, ids: number[]): Promise<Float32Array[]> {
  const params = new DenseParams(new Graph(), model.weights, new Set());
  const input = params.graph.input("ids", [1, ids.length], "int64");
  const logits = llamaLogits(model.config, params, llamaHidden(model.config, params, { ids: input }));
  const compiled = await CompiledGraph.compile(params.graph, { logp: E.logSoftmax(logits, -1) });
  const out = await compiled.run({ ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
  const V = model.config.vocabSize;
  const data = out.logp!.data as Float32Array;
  return ids.map((_, t) => data.subarray(t * V, (t + 1) * V));
}

/**
 * google/gemma-3-270m's config.json, widths scaled down: 6 layers so that the pattern has its global
 * layer (index 5), one key/value head, head_dim · heads ≠ hidden_size as in the real model (256 · 4
 * vs 640), query_pre_attn_scalar = head_dim as in the real model (llama.cpp derives it so), and a
 * sliding window of 6 tokens so that a test prompt of 14 tokens reaches past it.
 */
export const GEMMA3_TINY_CONFIG = {
  _sliding_window_pattern: 6,
  architectures: ["Gemma3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  attn_logit_softcapping: null,
  bos_token_id: 4095,
  eos_token_id: 4095,
  final_logit_softcapping: null,
  head_dim: 32,
  hidden_activation: "gelu_pytorch_tanh",
  hidden_size: 64,
  initializer_range: 0.02,
  intermediate_size: 192,
  layer_types: ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
  max_position_embeddings: 512,
  model_type: "gemma3_text",
  num_attention_heads: 4,
  num_hidden_layers: 6,
  num_key_value_heads: 1,
  pad_token_id: 4095,
  query_pre_attn_scalar: 32,
  rms_norm_eps: 1e-6,
  rope_local_base_freq: 10000.0,
  rope_scaling: null,
  rope_theta: 1000000.0,
  sliding_window: 6,
  torch_dtype: "float32",
  use_bidirectional_attention: false,
  use_cache: true,
  vocab_size: 4096,
};

/**
 * Largest |log p − ours| over the tokens llama.cpp gives p ≥ `minP` at positions [from, to), and how
 * many were compared: below 1e-4, float32 rounding of the softmax dominates log p.
 */
export function logProbGap(theirs: ReadonlyArray<ReadonlyMap<number, number>>, ours: readonly Float32Array[], from = 0, to = theirs.length, minP = 1e-4): { worst: number; compared: number } {
  let worst = 0;
  let compared = 0;
  for (let t = from; t < to; t++) {
    for (const [token, p] of theirs[t]!) {
      if (p < minP) continue;
      worst = Math.max(worst, Math.abs(Math.log(p) - ours[t]![token]!));
      compared++;
    }
  }
  return { worst, compared };
}

/** slimtune's greedy continuation of `promptIds` (no stop token), with an adapter folder if given. */
export async function greedyIds(base: LoadedBase, tokenizer: TextTokenizer, promptIds: number[], newTokens: number, adapter?: string): Promise<number[]> {
  const g = await Generator.create(generationScoring(base, adapter), tokenizer);
  const r = await g.generate(promptIds, { maxNewTokens: newTokens, temperature: 0, eosTokenIds: [] });
  await g.release();
  return r.ids;
}
