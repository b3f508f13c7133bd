// Reads and writes a Hugging Face config.json for the LLaMA family (llama, mistral, qwen2, qwen3, phi3, gemma3_text), with transformers' defaults; gpt2 in gpt2-config.ts.

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { SlimtuneError, quote } from "../core/errors.js";
import { withIo } from "../core/io.js";
import { parseFields, readJsonObject, shownJson } from "../core/json.js";
import type { LayerShape, LlamaConfig, LlamaModelType } from "../arch/llama/config.js";
import type { Llama3RopeScaling } from "../arch/llama/config.js";
import { GEMMA3_DEFAULTS, parseGemma3Fields } from "./gemma3-config.js";
import { gpt2ConfigJson, parseGpt2Config } from "./gpt2-config.js";

export type { LayerShape, LlamaConfig, LlamaModelType } from "../arch/llama/config.js";
export { layerShape } from "../arch/llama/config.js";

export const LAYER_SHAPES_KEY = "slimtune_layer_shapes";

const supportedTypes: readonly LlamaModelType[] = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3_text", "gpt2"];

// transformers' per-class defaults for max_position_embeddings (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Phi3Config, Gemma3TextConfig).
const defaultMaxPositions: Record<Exclude<LlamaModelType, "gpt2">, number> = { llama: 2048, mistral: 131072, qwen2: 32768, qwen3: 32768, phi3: 4096, gemma3_text: GEMMA3_DEFAULTS.maxPositions };

/**
 * Upper bounds on the sizes a config may declare, checked before anything is allocated from them.
 * Each is several times the largest LLaMA-family model published (126 layers, hidden 16,384,
 * intermediate 53,248, 128 heads, head_dim 256, vocabularies of 256 k, contexts of 1 M), and far
 * below what would exhaust memory while building the per-layer tables.
 */
export const CONFIG_LIMITS = {
  num_hidden_layers: 1024,
  hidden_size: 131_072,
  intermediate_size: 524_288,
  num_attention_heads: 4096,
  num_key_value_heads: 4096,
  head_dim: 1024,
  vocab_size: 4_194_304,
  max_position_embeddings: 1 << 22,
  sliding_window: 1 << 22,
} as const;

const positiveInt = z.number().int().positive();
const bounded = (field: keyof typeof CONFIG_LIMITS) => positiveInt.max(CONFIG_LIMITS[field]);
const tokenId = z.number().int().nonnegative().max(CONFIG_LIMITS.vocab_size);
const ropeDefault = z.looseObject({ rope_type: z.literal("default").optional(), type: z.literal("default").optional() });
const ropeLlama3 = z.looseObject({
  rope_type: z.literal("llama3").optional(),
  type: z.literal("llama3").optional(),
  factor: z.number().positive(),
  low_freq_factor: z.number().positive(),
  high_freq_factor: z.number().positive(),
  original_max_position_embeddings: z.number().int().positive(),
});

/**
 * Plain RoPE (rope_scaling null or rope_type "default"), or Llama 3's scaling, from rope_scaling
 * (transformers ≤ 4) or rope_parameters (transformers 5). Other scalings are refused.
 */
function parseRopeScaling(ropeScaling: unknown, ropeParameters: Record<string, unknown> | null | undefined, file: string): Llama3RopeScaling | undefined {
  const source = ropeScaling ?? (ropeParameters && ropeParameters.rope_type !== undefined && ropeParameters.rope_type !== "default" ? ropeParameters : null);
  const where = ropeScaling !== undefined && ropeScaling !== null ? "rope_scaling" : "rope_parameters";
  if (source === null || source === undefined || ropeDefault.safeParse(source).success) return undefined;
  const type = (source as Record<string, unknown>).rope_type ?? (source as Record<string, unknown>).type;
  if (type !== "llama3") {
    throw configError(
      file,
      where === "rope_parameters"
        ? `rope_parameters.rope_type ${shownJson(type)} is not supported yet; slimtune implements plain RoPE ("default") and Llama 3's scaling ("llama3")`
        : `rope_scaling ${shownJson(source)} is not supported yet; slimtune implements plain RoPE (rope_scaling null) and Llama 3's scaling (rope_type "llama3")`,
    );
  }
  const parsed = ropeLlama3.safeParse(source);
  if (!parsed.success) {
    throw configError(
      file,
      `${where} ${shownJson(source)}: rope_type "llama3" needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings (positive numbers, as Llama 3.x configs give them); other forms are not supported yet`,
    );
  }
  const p = parsed.data;
  if (p.high_freq_factor <= p.low_freq_factor) {
    throw configError(file, `${where}: high_freq_factor ${p.high_freq_factor} must exceed low_freq_factor ${p.low_freq_factor} (Llama 3 uses 4 and 1)`);
  }
  return { type: "llama3", factor: p.factor, lowFreqFactor: p.low_freq_factor, highFreqFactor: p.high_freq_factor, originalMaxPositions: p.original_max_position_embeddings };
}

const configShape = {
  hidden_size: bounded("hidden_size"),
  intermediate_size: bounded("intermediate_size"),
  num_hidden_layers: bounded("num_hidden_layers"),
  num_attention_heads: bounded("num_attention_heads"),
  num_key_value_heads: bounded("num_key_value_heads").nullish(),
  head_dim: bounded("head_dim").nullish(),
  vocab_size: bounded("vocab_size"),
  rms_norm_eps: z.number().positive().nullish(),
  rope_theta: z.number().positive().nullish(),
  rope_parameters: z.looseObject({ rope_type: z.string().optional(), rope_theta: z.number().positive().optional() }).nullish(),
  rope_scaling: z.unknown().optional(),
  tie_word_embeddings: z.boolean().nullish(),
  max_position_embeddings: bounded("max_position_embeddings").nullish(),
  attention_bias: z.boolean().nullish(),
  mlp_bias: z.boolean().nullish(),
  bos_token_id: tokenId.nullish(),
  eos_token_id: z.union([tokenId, z.array(tokenId).min(1).max(64)]).nullish(),
  hidden_act: z.string().nullish(),
  sliding_window: bounded("sliding_window").nullish(),
  use_sliding_window: z.boolean().nullish(),
  max_window_layers: z.number().int().nonnegative().max(CONFIG_LIMITS.num_hidden_layers).nullish(),
  partial_rotary_factor: z.number().positive().max(1).nullish(),
};

const upTo = (field: keyof typeof CONFIG_LIMITS) => `a positive integer up to ${CONFIG_LIMITS[field].toLocaleString("en-US")}`;

const expectations: { [K in keyof typeof configShape]: string } = {
  hidden_size: upTo("hidden_size"),
  intermediate_size: upTo("intermediate_size"),
  num_hidden_layers: upTo("num_hidden_layers"),
  num_attention_heads: upTo("num_attention_heads"),
  vocab_size: upTo("vocab_size"),
  max_position_embeddings: upTo("max_position_embeddings"),
  sliding_window: upTo("sliding_window"),
  rope_scaling: "null or a RoPE scaling object",
  num_key_value_heads: `${upTo("num_key_value_heads")}, or null`,
  head_dim: `${upTo("head_dim")}, or null`,
  rms_norm_eps: "a positive number",
  rope_theta: "a positive number",
  rope_parameters: 'an object like {"rope_type": "default", "rope_theta": 10000}',
  tie_word_embeddings: "true or false",
  attention_bias: "true or false",
  mlp_bias: "true or false",
  use_sliding_window: "true or false",
  max_window_layers: `a non-negative integer up to ${CONFIG_LIMITS.num_hidden_layers}`,
  partial_rotary_factor: "a number in (0, 1]",
  bos_token_id: "a non-negative integer token id below vocab_size",
  eos_token_id: "a token id or a list of up to 64 token ids, each below vocab_size",
  hidden_act: 'a string ("silu")',
};

function configError(file: string, message: string): SlimtuneError {
  return new SlimtuneError("E_CONFIG", message, file);
}

/** Validates a parsed config.json; `file` is only used in error messages. */
export function parseLlamaConfig(json: unknown, file: string): LlamaConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw configError(file, "must be a JSON object; re-download the model's config.json");
  }
  const raw = json as Record<string, unknown>;
  const modelType = raw.model_type;
  if (typeof modelType !== "string" || !(supportedTypes as readonly string[]).includes(modelType)) {
    const shown = modelType === undefined ? "(missing)" : shownJson(modelType);
    throw configError(
      file,
      `unsupported model_type ${shown} in config.json; slimtune supports the LLaMA family: ${supportedTypes.join(", ")}`,
    );
  }
  if (modelType === "gpt2") {
    const L = CONFIG_LIMITS;
    return parseGpt2Config(raw, file, { hidden: L.hidden_size, layers: L.num_hidden_layers, heads: L.num_attention_heads, intermediate: L.intermediate_size, vocab: L.vocab_size, positions: L.max_position_embeddings });
  }
  const type = modelType as Exclude<LlamaModelType, "gpt2">;
  const c = parseFields(raw, configShape, expectations, {
    file,
    label: (field) => `field "${field}"`,
    fix: "fix config.json (compare with the model's original config)",
  });

  // Gemma 3 differs in its activation, RoPE, window and defaults: its own fields, read in one place.
  const gemma3 = type === "gemma3_text" ? parseGemma3Fields(raw, c.num_hidden_layers, file) : undefined;
  const hiddenAct = gemma3?.hiddenAct ?? c.hidden_act ?? "silu";
  if (!gemma3 && hiddenAct !== "silu") {
    throw configError(file, `hidden_act ${shownJson(hiddenAct)} is not supported; the LLaMA family uses "silu" (SwiGLU)`);
  }
  const ropeScaling = gemma3 ? undefined : parseRopeScaling(c.rope_scaling, c.rope_parameters, file);

  const numHeads = c.num_attention_heads;
  const numKvHeads = c.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw configError(
      file,
      `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}; grouped-query attention needs each key/value head shared by a whole number of query heads — fix config.json`,
    );
  }
  // Qwen3Config's head_dim defaults to 128 whatever the widths; the other classes derive it.
  let headDim = c.head_dim ?? (type === "qwen3" ? 128 : gemma3 ? GEMMA3_DEFAULTS.headDim : undefined);
  if (headDim === undefined) {
    if (c.hidden_size % numHeads !== 0) {
      throw configError(
        file,
        `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${numHeads} and head_dim is absent; add "head_dim" to config.json`,
      );
    }
    headDim = c.hidden_size / numHeads;
  }
  if (headDim % 2 !== 0) {
    throw configError(file, `head_dim ${headDim} is odd; rotary embeddings need an even head_dim — fix config.json`);
  }

  const eosIds = c.eos_token_id === null || c.eos_token_id === undefined ? undefined : [c.eos_token_id].flat();
  // An id past the embedding's rows would crash the runtime's Gather the first time it is fed.
  for (const [field, id] of [["bos_token_id", c.bos_token_id], ...(eosIds ?? []).map((e) => ["eos_token_id", e] as const)] as const) {
    if (typeof id === "number" && id >= c.vocab_size) {
      throw configError(file, `${field} ${id} is not below vocab_size ${c.vocab_size}; the embedding has no row for it — fix config.json`);
    }
  }
  // qwen2 always has q/k/v biases (and none on o_proj); llama's and qwen3's attention_bias puts one on
  // all four projections (transformers' LlamaAttention and Qwen3Attention), mistral has none.
  const attentionBias = type === "qwen2" ? true : type === "llama" || type === "qwen3" ? (c.attention_bias ?? false) : false;
  if (type === "phi3" && (c.partial_rotary_factor ?? 1) !== 1) {
    throw configError(file, `partial_rotary_factor ${c.partial_rotary_factor} is not supported yet (Phi-4-mini rotates part of each head); slimtune rotates whole heads (1.0, as Phi-3)`);
  }
  const layerTypes = raw.layer_types;
  // Sliding layers without use_sliding_window have no window to slide (Qwen3Config leaves sliding_window None).
  if (type === "qwen3" && !c.use_sliding_window && layerTypes !== undefined && layerTypes !== null && !(Array.isArray(layerTypes) && layerTypes.every((t) => t === "full_attention"))) {
    throw configError(file, `layer_types ${quote(layerTypes)} names sliding layers but use_sliding_window is not true: set use_sliding_window and sliding_window, or list every layer as "full_attention"`);
  }
  const slidingWindow =
    type === "mistral"
      ? c.sliding_window === undefined
        ? 4096 // MistralConfig's default when the key is absent
        : (c.sliding_window ?? undefined)
      : type === "phi3"
        ? (c.sliding_window ?? undefined)
        : gemma3
        ? gemma3.slidingWindow
        : (type === "qwen2" || type === "qwen3") && c.use_sliding_window
        ? (c.sliding_window ?? undefined)
        : undefined;

  const config: LlamaConfig = {
    modelType: type,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: gemma3?.ropeTheta ?? c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000,
    ...(ropeScaling ? { ropeScaling } : {}),
    tieWordEmbeddings: gemma3?.tieWordEmbeddings ?? c.tie_word_embeddings ?? false,
    maxPositionEmbeddings: c.max_position_embeddings ?? defaultMaxPositions[type],
    attentionBias,
    outputBias: (type === "llama" || type === "qwen3") && attentionBias,
    mlpBias: type === "llama" && (c.mlp_bias ?? false),
    qkNorm: type === "qwen3" || gemma3 !== undefined,
    ...(type === "phi3" ? { fusedProjections: true } : {}),
    ...(gemma3 ? { gemma3: gemma3.options } : {}),
    hiddenAct,
    raw: { ...raw },
  };
  if (c.bos_token_id !== null && c.bos_token_id !== undefined) config.bosTokenId = c.bos_token_id;
  if (eosIds) {
    config.eosTokenId = eosIds[0];
    config.eosTokenIds = eosIds;
  }
  if (slidingWindow !== undefined) config.slidingWindow = slidingWindow;
  if (slidingWindow !== undefined && (type === "qwen2" || type === "qwen3")) config.windowedLayers = qwen2WindowedLayers(layerTypes, c.max_window_layers, c.num_hidden_layers, file);
  if (raw[LAYER_SHAPES_KEY] !== undefined && raw[LAYER_SHAPES_KEY] !== null) config.layerShapes = parseLayerShapes(raw[LAYER_SHAPES_KEY], config, file);
  return config;
}

/**
 * The layers of a qwen2 or qwen3 model with use_sliding_window true that attend within the window,
 * as Qwen2Config and Qwen3Config decide: layer_types when the config has it, else the layers at index ≥
 * max_window_layers (default 28).
 */
function qwen2WindowedLayers(layerTypes: unknown, maxWindowLayers: number | null | undefined, layers: number, file: string): boolean[] {
  if (layerTypes === undefined || layerTypes === null) return Array.from({ length: layers }, (_, i) => i >= (maxWindowLayers ?? 28));
  if (!Array.isArray(layerTypes) || layerTypes.length !== layers || !layerTypes.every((t) => t === "sliding_attention" || t === "full_attention")) {
    throw configError(file, `layer_types ${quote(layerTypes)} must list "sliding_attention" or "full_attention" for each of the ${layers} layers — fix config.json`);
  }
  return layerTypes.map((t) => t === "sliding_attention");
}

const layerShapeSchema = z.array(
  z.object({ num_attention_heads: z.number().int().nonnegative(), num_key_value_heads: z.number().int().nonnegative(), intermediate_size: z.number().int().nonnegative() }),
);

function parseLayerShapes(value: unknown, config: LlamaConfig, file: string): LayerShape[] {
  const parsed = layerShapeSchema.safeParse(value);
  if (!parsed.success || parsed.data.length !== config.numLayers) {
    throw configError(file, `"${LAYER_SHAPES_KEY}" must list ${config.numLayers} objects {num_attention_heads, num_key_value_heads, intermediate_size}, one per layer`);
  }
  return parsed.data.map((l, i) => {
    const heads = l.num_attention_heads;
    const kv = l.num_key_value_heads;
    if ((heads === 0) !== (kv === 0) || (kv > 0 && heads % kv !== 0) || heads > config.numHeads || l.intermediate_size > config.intermediateSize) {
      throw configError(file, `"${LAYER_SHAPES_KEY}"[${i}] = ${shownJson(l)}: heads must be a multiple of key/value heads (both 0 or both > 0) and no layer may be wider than the global widths`);
    }
    return { numHeads: heads, numKvHeads: kv, intermediateSize: l.intermediate_size };
  });
}

/** Reads `<modelDir>/config.json`. */
export function readLlamaConfig(modelDir: string): LlamaConfig {
  const st = withIo(modelDir, "open the model folder", () => fs.statSync(modelDir, { throwIfNoEntry: false }));
  if (!st?.isDirectory()) {
    throw new SlimtuneError(
      "E_NOT_FOUND",
      `model folder "${modelDir}" does not exist; pass a folder with config.json, model.safetensors and tokenizer.json`,
    );
  }
  // A folder that exists but cannot be listed (no read or search permission) is E_IO, not a missing config.json.
  withIo(modelDir, "list the model folder", () => fs.readdirSync(modelDir));
  const file = path.join(modelDir, "config.json");
  const json = readJsonObject(file, {
    missingFix: "config.json is missing from the model folder; copy it from the original Hugging Face model",
    invalidFix: "re-download it",
  });
  return parseLlamaConfig(json, file);
}

const architectures: Record<LlamaModelType, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  phi3: "Phi3ForCausalLM",
  gemma3_text: "Gemma3ForCausalLM",
  gpt2: "GPT2LMHeadModel",
};

/** The config as Hugging Face JSON: unknown fields of `raw` kept, known ones taken from `config`, then `overrides`. */
export function toHfConfigJson(config: LlamaConfig, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  if (config.modelType === "gpt2") return gpt2ConfigJson(config, overrides);
  const raw = config.raw;
  const out: Record<string, unknown> = {
    architectures: [architectures[config.modelType as LlamaModelType] ?? "LlamaForCausalLM"],
    ...raw,
    model_type: config.modelType,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    vocab_size: config.vocabSize,
    rms_norm_eps: config.rmsNormEps,
    tie_word_embeddings: config.tieWordEmbeddings,
    max_position_embeddings: config.maxPositionEmbeddings,
    ...(config.gemma3 ? { hidden_activation: config.hiddenAct } : { hidden_act: config.hiddenAct }),
  };
  // transformers v5 writes rope_parameters instead of rope_theta; update whichever the source used.
  const ropeParameters = raw.rope_parameters;
  if (config.gemma3) {
    // Gemma 3's RoPE fields (rope_theta, rope_local_base_freq, rope_scaling or the per-layer-type
    // rope_parameters) are kept as the source wrote them: slimtune never changes them.
  } else if (typeof ropeParameters === "object" && ropeParameters !== null) {
    out.rope_parameters = { ...ropeParameters, rope_theta: config.ropeTheta };
  } else {
    out.rope_theta = config.ropeTheta;
  }
  if (config.modelType === "llama") {
    out.attention_bias = config.attentionBias;
    out.mlp_bias = config.mlpBias;
  }
  if (config.modelType === "qwen3") out.attention_bias = config.attentionBias;
  if (config.modelType === "mistral" || config.modelType === "phi3" || ((config.modelType === "qwen2" || config.modelType === "qwen3") && raw.use_sliding_window)) {
    out.sliding_window = config.slidingWindow ?? null;
  }
  if (config.layerShapes) {
    out[LAYER_SHAPES_KEY] = config.layerShapes.map((l) => ({
      num_attention_heads: l.numHeads,
      num_key_value_heads: l.numKvHeads,
      intermediate_size: l.intermediateSize,
    }));
  } else {
    delete out[LAYER_SHAPES_KEY];
  }
  if (config.bosTokenId !== undefined) out.bos_token_id = config.bosTokenId;
  const eosIds = config.eosTokenIds;
  if (eosIds && eosIds.length > 1 && eosIds[0] === config.eosTokenId) out.eos_token_id = eosIds;
  else if (config.eosTokenId !== undefined) out.eos_token_id = config.eosTokenId;
  return { ...out, ...overrides };
}
