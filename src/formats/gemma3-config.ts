// The Gemma 3 text fields of a config.json (model_type "gemma3_text"), with Gemma3TextConfig's
// defaults: the layer pattern (layer_types, else every sliding_window_pattern-th layer global), the
// two RoPE bases, query_pre_attn_scalar, and what slimtune refuses rather than ignore (softcapping,
// bidirectional attention, attention biases, RoPE scalings other than linear).

import { SlimtuneError, quote } from "../core/errors.js";
import { isJsonObject, shownJson } from "../core/json.js";
import type { Gemma3Options } from "../arch/llama/gemma3.js";

/** Gemma3TextConfig's defaults for fields a config.json may leave out. */
export const GEMMA3_DEFAULTS = {
  headDim: 256,
  maxPositions: 131072,
  ropeTheta: 1_000_000,
  localRopeTheta: 10_000,
  queryPreAttnScalar: 256,
  slidingWindow: 4096,
  slidingWindowPattern: 6,
  hiddenActivation: "gelu_pytorch_tanh",
  tieWordEmbeddings: true,
} as const;

export interface Gemma3Fields {
  options: Gemma3Options;
  ropeTheta: number;
  slidingWindow: number;
  hiddenAct: string;
  tieWordEmbeddings: boolean;
}

const fail = (file: string, message: string): never => {
  throw new SlimtuneError("E_CONFIG", message, file);
};

const positive = (raw: Record<string, unknown>, key: string, fallback: number, file: string, integer = false): number => {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    return fail(file, `field "${key}" is ${shownJson(v)}; expected a positive ${integer ? "integer" : "number"} — fix config.json`);
  }
  return v;
};

/** Reads the Gemma 3 fields of `raw` (a gemma3_text config.json) for a model of `numLayers` layers. */
export function parseGemma3Fields(raw: Record<string, unknown>, numLayers: number, file: string): Gemma3Fields {
  for (const key of ["attn_logit_softcapping", "final_logit_softcapping"]) {
    if (raw[key] !== undefined && raw[key] !== null) {
      fail(file, `${key} ${shownJson(raw[key])} is not supported: Gemma 3 has no softcapping (null), and slimtune implements none rather than ignore it`);
    }
  }
  if (raw.use_bidirectional_attention === true) fail(file, "use_bidirectional_attention true (EmbeddingGemma) is not supported; slimtune implements Gemma 3's causal decoder");
  if (raw.attention_bias === true) fail(file, "attention_bias true is not supported for gemma3_text (no released Gemma 3 has attention biases, and llama.cpp's gemma3 reads none)");
  const act = raw.hidden_activation ?? raw.hidden_act ?? GEMMA3_DEFAULTS.hiddenActivation;
  if (act !== "gelu_pytorch_tanh") fail(file, `hidden_activation ${shownJson(act)} is not supported; Gemma 3 uses "gelu_pytorch_tanh" (GeGLU with tanh GELU)`);

  const window = positive(raw, "sliding_window", GEMMA3_DEFAULTS.slidingWindow, file, true);
  const sliding = slidingLayers(raw, numLayers, file);
  const { globalTheta, localTheta, factor } = gemma3Rope(raw, file);
  const tie = raw.tie_word_embeddings;
  if (tie !== undefined && tie !== null && typeof tie !== "boolean") fail(file, `field "tie_word_embeddings" is ${shownJson(tie)}; expected true or false`);
  return {
    options: {
      slidingLayers: sliding,
      localRopeTheta: localTheta,
      globalRopeFactor: factor,
      queryPreAttnScalar: positive(raw, "query_pre_attn_scalar", GEMMA3_DEFAULTS.queryPreAttnScalar, file),
    },
    ropeTheta: globalTheta,
    slidingWindow: window,
    hiddenAct: "gelu_pytorch_tanh",
    tieWordEmbeddings: typeof tie === "boolean" ? tie : GEMMA3_DEFAULTS.tieWordEmbeddings,
  };
}

/** layer_types when given, else Gemma3TextConfig's rule: layer i is global when (i + 1) is a multiple of the pattern. */
function slidingLayers(raw: Record<string, unknown>, numLayers: number, file: string): boolean[] {
  const types = raw.layer_types;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== numLayers || !types.every((t) => t === "sliding_attention" || t === "full_attention")) {
      return fail(file, `layer_types ${quote(types)} must list ${numLayers} entries, each "sliding_attention" or "full_attention"`);
    }
    return types.map((t) => t === "sliding_attention");
  }
  const pattern = positive(raw, "sliding_window_pattern", positive(raw, "_sliding_window_pattern", GEMMA3_DEFAULTS.slidingWindowPattern, file, true), file, true);
  return Array.from({ length: numLayers }, (_, i) => (i + 1) % pattern !== 0);
}

/**
 * The global and local RoPE bases and the global layers' linear factor, from transformers 4's
 * rope_theta / rope_local_base_freq / rope_scaling or transformers 5's rope_parameters
 * {full_attention: {…}, sliding_attention: {…}}.
 */
function gemma3Rope(raw: Record<string, unknown>, file: string): { globalTheta: number; localTheta: number; factor: number } {
  const params = raw.rope_parameters;
  if (isJsonObject(params) && (isJsonObject(params.full_attention) || isJsonObject(params.sliding_attention))) {
    const full = isJsonObject(params.full_attention) ? params.full_attention : {};
    const local = isJsonObject(params.sliding_attention) ? params.sliding_attention : {};
    if (local.rope_type !== undefined && local.rope_type !== "default") fail(file, `rope_parameters.sliding_attention.rope_type ${shownJson(local.rope_type)} is not supported; Gemma 3's sliding layers use plain RoPE ("default")`);
    return {
      globalTheta: positive(full, "rope_theta", GEMMA3_DEFAULTS.ropeTheta, file),
      localTheta: positive(local, "rope_theta", GEMMA3_DEFAULTS.localRopeTheta, file),
      factor: linearFactor(full, "rope_parameters.full_attention", file),
    };
  }
  const flat = isJsonObject(params) ? params : {};
  const scaling = raw.rope_scaling ?? (flat.rope_type !== undefined && flat.rope_type !== "default" ? flat : null);
  return {
    globalTheta: positive(flat, "rope_theta", positive(raw, "rope_theta", GEMMA3_DEFAULTS.ropeTheta, file), file),
    localTheta: positive(raw, "rope_local_base_freq", GEMMA3_DEFAULTS.localRopeTheta, file),
    factor: scaling === null ? 1 : isJsonObject(scaling) ? linearFactor(scaling, "rope_scaling", file) : fail(file, `rope_scaling ${shownJson(scaling)} must be null or an object`),
  };
}

/** 1 for plain RoPE, the factor of rope_type "linear" (Gemma 3 4B–27B use 8); other types are refused. */
function linearFactor(scaling: Record<string, unknown>, where: string, file: string): number {
  const type = scaling.rope_type ?? scaling.type ?? "default";
  if (type === "default") return 1;
  if (type !== "linear") return fail(file, `${where} rope_type ${shownJson(type)} is not supported for gemma3_text; slimtune implements plain RoPE and the linear scaling Gemma 3 uses`);
  if (scaling.factor === undefined || scaling.factor === null) return fail(file, `${where}: rope_type "linear" needs a factor (Gemma 3 4B–27B use 8)`);
  return positive(scaling, "factor", 1, file);
}
