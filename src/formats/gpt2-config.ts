// GPT-2's config.json (transformers' GPT2Config) to slimtune's config and back. GPT2Config's own
// field names (n_embd, n_head, n_layer, n_positions, n_inner, layer_norm_epsilon,
// activation_function) and defaults; options that change the block's math away from the released
// models (no 1/√d scaling, per-layer scaling, cross-attention, another activation) are refused
// rather than ignored.

import { z } from "zod";
import { SlimtuneError } from "../core/errors.js";
import { parseFields, shownJson } from "../core/json.js";
import type { LlamaConfig } from "../arch/llama/config.js";

/** The bounds hf-config.ts applies to every family, by GPT-2's field names. */
export interface Gpt2Limits {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  vocab: number;
  positions: number;
}

/** transformers' gelu_new and gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), what llama.cpp's gpt2 computes. */
const TANH_GELU = ["gelu_new", "gelu_pytorch_tanh"];

function configError(file: string, message: string): SlimtuneError {
  return new SlimtuneError("E_CONFIG", message, file);
}

/** Validates a GPT2Config (model_type "gpt2"); `file` is only used in error messages. */
export function parseGpt2Config(raw: Record<string, unknown>, file: string, limits: Gpt2Limits): LlamaConfig {
  const upTo = (n: number) => z.number().int().positive().max(n);
  const tokenId = z.number().int().nonnegative().max(limits.vocab);
  const shape = {
    n_embd: upTo(limits.hidden).nullish(),
    n_layer: upTo(limits.layers).nullish(),
    n_head: upTo(limits.heads).nullish(),
    n_inner: upTo(limits.intermediate).nullish(),
    n_positions: upTo(limits.positions).nullish(),
    vocab_size: upTo(limits.vocab).nullish(),
    layer_norm_epsilon: z.number().positive().nullish(),
    activation_function: z.string().nullish(),
    scale_attn_weights: z.boolean().nullish(),
    scale_attn_by_inverse_layer_idx: z.boolean().nullish(),
    reorder_and_upcast_attn: z.boolean().nullish(),
    add_cross_attention: z.boolean().nullish(),
    tie_word_embeddings: z.boolean().nullish(),
    bos_token_id: tokenId.nullish(),
    eos_token_id: tokenId.nullish(),
  };
  const count = (n: number) => `a positive integer up to ${n.toLocaleString("en-US")}`;
  const c = parseFields(
    raw,
    shape,
    {
      n_embd: count(limits.hidden),
      n_layer: count(limits.layers),
      n_head: count(limits.heads),
      n_inner: `${count(limits.intermediate)}, or null (4 · n_embd)`,
      n_positions: count(limits.positions),
      vocab_size: count(limits.vocab),
      layer_norm_epsilon: "a positive number",
      activation_function: 'a string ("gelu_new")',
      scale_attn_weights: "true or false",
      scale_attn_by_inverse_layer_idx: "true or false",
      reorder_and_upcast_attn: "true or false",
      add_cross_attention: "true or false",
      tie_word_embeddings: "true or false",
      bos_token_id: "a non-negative integer token id below vocab_size",
      eos_token_id: "a non-negative integer token id below vocab_size",
    },
    { file, label: (field) => `field "${field}"`, fix: "fix config.json (compare with the model's original config)" },
  );
  // GPT2Config's defaults are GPT-2 small's.
  const hidden = c.n_embd ?? 768;
  const heads = c.n_head ?? 12;
  const vocab = c.vocab_size ?? 50257;
  const activation = c.activation_function ?? "gelu_new";
  if (!TANH_GELU.includes(activation)) {
    throw configError(file, `activation_function ${shownJson(activation)} is not supported for gpt2; slimtune implements the tanh GELU of the released models ("gelu_new")`);
  }
  const refuse = (field: string, value: unknown, wanted: unknown, why: string) => {
    if (value !== null && value !== undefined && value !== wanted) throw configError(file, `${field} ${shownJson(value)} is not supported for gpt2 (${why}); slimtune implements ${shownJson(wanted)}, as the released models`);
  };
  refuse("scale_attn_weights", c.scale_attn_weights, true, "attention scores without the 1/√head_dim scale");
  refuse("scale_attn_by_inverse_layer_idx", c.scale_attn_by_inverse_layer_idx, false, "scores also divided by the layer's index + 1");
  refuse("reorder_and_upcast_attn", c.reorder_and_upcast_attn, false, "Mistral's reordered, upcast attention");
  refuse("add_cross_attention", c.add_cross_attention, false, "an encoder-decoder's cross-attention");
  if (hidden % heads !== 0) {
    throw configError(file, `n_embd ${hidden} is not divisible by n_head ${heads}; GPT-2's heads split the hidden state evenly — fix config.json`);
  }
  for (const [field, id] of [["bos_token_id", c.bos_token_id], ["eos_token_id", c.eos_token_id]] as const) {
    if (typeof id === "number" && id >= vocab) throw configError(file, `${field} ${id} is not below vocab_size ${vocab}; the embedding has no row for it — fix config.json`);
  }
  const config: LlamaConfig = {
    modelType: "gpt2",
    hiddenSize: hidden,
    intermediateSize: c.n_inner ?? 4 * hidden,
    numLayers: c.n_layer ?? 12,
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    vocabSize: vocab,
    rmsNormEps: c.layer_norm_epsilon ?? 1e-5,
    ropeTheta: 10000, // unused: GPT-2 has learned positions
    tieWordEmbeddings: c.tie_word_embeddings ?? true,
    maxPositionEmbeddings: c.n_positions ?? 1024,
    attentionBias: true,
    outputBias: true,
    mlpBias: true,
    qkNorm: false,
    hiddenAct: activation,
    raw: { ...raw },
  };
  const bos = c.bos_token_id === undefined ? 50256 : c.bos_token_id;
  const eos = c.eos_token_id === undefined ? 50256 : c.eos_token_id;
  if (bos !== null && bos < vocab) config.bosTokenId = bos;
  if (eos !== null && eos < vocab) {
    config.eosTokenId = eos;
    config.eosTokenIds = [eos];
  }
  return config;
}

/** The config as GPT2Config JSON: unknown fields of `raw` kept, known ones from `config`, then `overrides`. */
export function gpt2ConfigJson(config: LlamaConfig, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    architectures: ["GPT2LMHeadModel"],
    ...config.raw,
    model_type: "gpt2",
    n_embd: config.hiddenSize,
    n_layer: config.numLayers,
    n_head: config.numHeads,
    n_inner: config.intermediateSize === 4 * config.hiddenSize ? null : config.intermediateSize,
    n_positions: config.maxPositionEmbeddings,
    vocab_size: config.vocabSize,
    layer_norm_epsilon: config.rmsNormEps,
    activation_function: config.hiddenAct,
    tie_word_embeddings: config.tieWordEmbeddings,
  };
  if (config.bosTokenId !== undefined) out.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== undefined) out.eos_token_id = config.eosTokenId;
  return { ...out, ...overrides };
}
