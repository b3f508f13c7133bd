// A LLaMA-family model in GGUF (formats.md §3.6-3.11): tensor names, the Q/K row permutation (HF's
// rotate-half RoPE → llama.cpp's adjacent-pair RoPE), the hyperparameter keys of the `llama`
// architecture and of `deci` (per-layer head and channel counts of a pruned model), and reading
// such a file back into a config and float weights.

import type { LlamaConfig } from "../../arch/llama/config.js";
import { isGpt2, layerShape } from "../../arch/llama/config.js";
import { gpt2GgufName, gpt2Hyperparameters, readGpt2Gguf } from "./gpt2.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { shownJson } from "../../core/json.js";
import { CONFIG_LIMITS, LAYER_SHAPES_KEY, parseLlamaConfig } from "../hf-config.js";
import { type GgufFile, readGgufHeader, readTensor } from "./reader.js";
import { tokenizerFromGguf } from "./tokenizer.js";
import type { GgufValue } from "./writer.js";
import { ROPE_FREQS_TENSOR, llama3ScalingFromFactors } from "./rope-freqs.js";
import { GEMMA3_NORM_TENSORS, gemma3ConfigFields, isShiftedNorm, unshiftNorm } from "./gemma3.js";

export type GgufArch = "llama" | "deci" | "qwen3" | "phi3" | "gemma3" | "gpt2";

/**
 * The llama.cpp architecture a uniform-width model is written as. qwen3 needs its own (llama.cpp's
 * `llama` graph has no q/k norms), and llama.cpp's qwen3 applies RoPE in HF's rotate-half layout
 * (LLAMA_ROPE_TYPE_NEOX), so its Q/K rows stay as they are; every other family is written as
 * `llama`, whose adjacent-pair RoPE needs the permutation below. phi3 likewise: llama.cpp's phi3
 * reads the fused attn_qkv and a fused ffn_up (gate rows, then up rows) and rotates rotate-half.
 */
export function uniformGgufArch(config: LlamaConfig): GgufArch {
  if (isGpt2(config)) return "gpt2"; // its own names and keys: gpt2.ts
  // gemma3 (Gemma 3, q/k norms too) rotates rotate-half as well (LLAMA_ROPE_TYPE_NEOX).
  return config.gemma3 ? "gemma3" : config.qkNorm ? "qwen3" : config.fusedProjections ? "phi3" : "llama";
}

const LAYER_TENSORS: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "self_attn.q_norm.weight": "attn_q_norm.weight",
  "self_attn.k_norm.weight": "attn_k_norm.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
  // phi3's fused layers, last: reading a GGUF back, ffn_up is a llama up_proj first.
  "self_attn.qkv_proj": "attn_qkv",
  "mlp.gate_up_proj": "ffn_up",
};
const GLOBAL_TENSORS: Record<string, string> = {
  "model.embed_tokens.weight": "token_embd.weight",
  "model.norm.weight": "output_norm.weight",
  "lm_head.weight": "output.weight",
};

/** The GGUF name of a transformers tensor name (e.g. model.layers.3.mlp.up_proj.weight → blk.3.ffn_up.weight). */
export function ggufTensorName(hf: string, arch?: GgufArch): string {
  const gpt2 = gpt2GgufName(hf);
  if (gpt2) return gpt2;
  const global = GLOBAL_TENSORS[hf];
  if (global) return global;
  const m = /^model\.layers\.(\d+)\.(.+?)(\.weight|\.bias)?$/.exec(hf);
  if (m) {
    const [, i, rest, suffix] = m;
    const full = (arch === "gemma3" ? GEMMA3_NORM_TENSORS[`${rest}${suffix ?? ""}`] : undefined) ?? LAYER_TENSORS[`${rest}${suffix ?? ""}`];
    if (full) return `blk.${i}.${full}`;
    const module = LAYER_TENSORS[rest!];
    if (module && suffix) return `blk.${i}.${module}${suffix}`;
  }
  throw new SlimtuneError("E_ARG", `tensor "${hf}" has no GGUF name in the llama architecture`);
}

/** The transformers name of a GGUF tensor name, or null when it is not a LLaMA tensor. */
export function hfTensorName(gguf: string): string | null {
  for (const [hf, g] of Object.entries(GLOBAL_TENSORS)) if (g === gguf) return hf;
  const m = /^blk\.(\d+)\.(.+)$/.exec(gguf);
  if (!m) return null;
  for (const [hf, g] of Object.entries(LAYER_TENSORS)) {
    if (g === m[2]) return `model.layers.${m[1]}.${hf}`;
    if (`${g}.weight` === m[2] || `${g}.bias` === m[2]) return `model.layers.${m[1]}.${hf}${m[2].slice(g.length)}`;
  }
  return null;
}

/**
 * Reorders the rows of q_proj or k_proj (or their biases, or LoRA B) [heads·d, cols] between HF's
 * rotate-half layout and GGUF's adjacent pairs: GGUF row h·d + 2i + t = HF row h·d + t·d/2 + i.
 */
export function permuteQK(data: Float32Array, heads: number, headDim: number, to: "gguf" | "hf"): Float32Array {
  const cols = data.length / (heads * headDim);
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let t = 0; t < 2; t++) {
        const g = h * headDim + 2 * i + t;
        const hf = h * headDim + t * half + i;
        const [from, into] = to === "gguf" ? [hf, g] : [g, hf];
        out.set(data.subarray(from * cols, (from + 1) * cols), into * cols);
      }
    }
  }
  return out;
}

/**
 * Heads whose rows a q or k tensor of layer i holds, i.e. that permuteQK reorders: 0 when the tensor
 * is not q/k, or when the model's GGUF architecture keeps HF's rotate-half layout (qwen3).
 */
export function qkHeads(config: LlamaConfig, hfName: string): number {
  if (uniformGgufArch(config) !== "llama") return 0;
  const m = /^model\.layers\.(\d+)\.self_attn\.([qk])_proj\./.exec(hfName) ?? /^(?:base_model\.model\.)?model\.layers\.(\d+)\.self_attn\.([qk])_proj\./.exec(hfName);
  if (!m) return 0;
  const w = layerShape(config, Number(m[1]));
  return m[2] === "q" ? w.numHeads : w.numKvHeads;
}

/** Per-layer widths as written: deci gives a layer without an MLP 32 zero channels (see ffnWidths). */
export interface GgufLayerWidths {
  heads: number[];
  kvHeads: number[];
  ff: number[];
}

/**
 * The {arch}.* hyperparameters llama.cpp reads (exact value types: uint32 sizes, float32 eps and
 * RoPE base). `llama` takes scalars; `deci` takes per-layer arrays of heads, key/value heads and
 * MLP channels.
 */
export function llamaHyperparameters(config: LlamaConfig, arch: GgufArch, widths: GgufLayerWidths): Array<[string, GgufValue]> {
  if (arch === "gpt2") return gpt2Hyperparameters(config);
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const f32 = (value: number): GgufValue => ({ type: "f32", value });
  const perLayer = (values: number[]): GgufValue => (arch === "deci" ? { type: "array", of: "i32", values } : u32(values[0]!));
  // phi3's window, as llama.cpp's converter writes it (llama.cpp reads the key and then attends fully;
  // slimtune reads it back so that the file is the model transformers computes).
  const window: Array<[string, GgufValue]> = arch === "phi3" && config.slidingWindow !== undefined ? [["phi3.attention.sliding_window", u32(config.slidingWindow)]] : [];
  return [
    ...window,
    [`${arch}.context_length`, u32(config.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, u32(config.hiddenSize)],
    [`${arch}.block_count`, u32(config.numLayers)],
    [`${arch}.feed_forward_length`, perLayer(widths.ff)],
    [`${arch}.attention.head_count`, perLayer(widths.heads)],
    [`${arch}.attention.head_count_kv`, perLayer(widths.kvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(config.rmsNormEps)],
    [`${arch}.rope.freq_base`, f32(config.ropeTheta)],
    [`${arch}.rope.dimension_count`, u32(config.headDim)],
    [`${arch}.attention.key_length`, u32(config.headDim)],
    [`${arch}.attention.value_length`, u32(config.headDim)],
    [`${arch}.vocab_size`, u32(config.vocabSize)],
  ];
}

/** A tensor of a sub-block a pruning removed: attention of a layer without heads, MLP without channels. */
export function isRemoved(config: LlamaConfig, hfName: string): boolean {
  const m = /^model\.layers\.(\d+)\.(input_layernorm|self_attn|post_attention_layernorm|mlp)\./.exec(hfName);
  if (!m) return false;
  const w = layerShape(config, Number(m[1]));
  return m[2] === "input_layernorm" || m[2] === "self_attn" ? w.numHeads === 0 : w.intermediateSize === 0;
}

/** What a GGUF LLaMA model file holds, in slimtune's terms. */
export interface LlamaGguf {
  config: LlamaConfig;
  weights: Map<string, HostParam>;
  gguf: GgufFile;
}

/** Reads a `llama`, `deci`, `qwen3`, `phi3`, `gemma3` or `gpt2` GGUF model: config from its keys, float32 weights (dequantized, un-permuted). */
export function readLlamaGguf(file: string): LlamaGguf {
  return llamaFromGguf(readGgufHeader(file));
}

/** readLlamaGguf on a parsed header (from a path or from bytes: parseGgufBytes). */
export function llamaFromGguf(gguf: GgufFile): LlamaGguf {
  if (gguf.metadata.get("general.architecture")?.value === "gpt2") return { ...readGpt2Gguf(gguf), gguf }; // its own keys and names: gpt2.ts
  const { config, arch } = ggufLlamaConfig(gguf);
  return { config, weights: ggufLlamaWeights(gguf, config, arch), gguf };
}

/**
 * The config of a LLaMA-family GGUF model from its keys and tensor shapes (no tensor data is read
 * but the head_dim/2 floats of rope_freqs, so a page can check what fits in memory first). GPT-2
 * files are refused: their config is gpt2.ts's.
 */
export function ggufLlamaConfig(gguf: GgufFile): { config: LlamaConfig; arch: GgufArch } {
  const meta = gguf.metadata;
  const file = gguf.file;
  const fail = (why: string): never => {
    throw new SlimtuneError("E_GGUF", why, file);
  };
  const arch = meta.get("general.architecture")?.value;
  if (arch !== "llama" && arch !== "deci" && arch !== "qwen3" && arch !== "phi3" && arch !== "gemma3") fail(`general.architecture is ${shownJson(arch)}; slimtune reads "llama", "deci" (LLaMA-family), "qwen3", "phi3", "gemma3" and "gpt2" GGUF models`);
  if (arch === "phi3" && !gguf.tensors.has("blk.0.attn_qkv.weight")) fail("is a phi3 model with separate attn_q/attn_k/attn_v; slimtune reads phi3 with the fused attn_qkv that llama.cpp's converter writes");
  if (meta.get("general.type")?.value === "adapter") fail("is a LoRA adapter, not a model; pass the base model GGUF as --model");
  const num = (key: string, required = true): number | undefined => {
    const v = meta.get(`${arch}.${key}`)?.value;
    if (v === undefined) return required ? fail(`${arch}.${key} is missing`) : undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) return fail(`${arch}.${key} is ${String(v)}; expected a number`);
    return v;
  };
  const layers = num("block_count")!;
  // Bounded before the per-layer arrays are built from it.
  if (!Number.isInteger(layers) || layers < 1 || layers > CONFIG_LIMITS.num_hidden_layers) {
    fail(`${arch}.block_count is ${layers}; expected an integer from 1 to ${CONFIG_LIMITS.num_hidden_layers}`);
  }
  const perLayer = (key: string, fallback?: number[]): number[] => {
    const v = meta.get(`${arch}.${key}`)?.value;
    if (v === undefined && fallback) return fallback;
    if (typeof v === "number") return new Array<number>(layers).fill(v);
    if (Array.isArray(v) && v.length === layers && v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) return v as number[];
    return fail(`${arch}.${key} is ${shownJson(v)}; expected a count or an array of ${layers} counts`);
  };
  const heads = perLayer("attention.head_count");
  const kvHeads = perLayer("attention.head_count_kv", heads);
  const ff = perLayer("feed_forward_length");
  const hidden = num("embedding_length")!;
  const maxHeads = Math.max(...heads);
  const headDim = num("attention.key_length", false) ?? (maxHeads > 0 ? hidden / maxHeads : fail("has no attention heads and no key_length"));
  const rotary = num("rope.dimension_count", false);
  if (rotary !== undefined && rotary !== headDim) fail(`${arch}.rope.dimension_count ${rotary} differs from the head size ${headDim}; partial rotary embeddings are not LLaMA`);
  const linearGemma = arch === "gemma3" && meta.get(`${arch}.rope.scaling.type`)?.value === "linear";
  if (!linearGemma && meta.has(`${arch}.rope.scaling.type`) && meta.get(`${arch}.rope.scaling.type`)?.value !== "none") fail(`${arch}.rope.scaling.type is set; slimtune implements plain RoPE only`);
  const ropeScaling = ggufRopeScaling(gguf, String(arch), headDim, num("rope.freq_base", false) ?? 10000);
  const embed = gguf.tensors.get("token_embd.weight") ?? fail("has no token_embd.weight");
  const vocab = embed.ne[1]!;

  tokenizerFromGguf(meta, file); // fails early on a tokenizer slimtune cannot rebuild
  const tokenIds = (key: string) => {
    const v = meta.get(`tokenizer.ggml.${key}`)?.value;
    return typeof v === "number" && v < vocab ? v : undefined;
  };
  const uniform = (xs: number[]) => xs.every((x) => x === xs[0]);
  const raw: Record<string, unknown> = {
    architectures: [arch === "qwen3" ? "Qwen3ForCausalLM" : arch === "phi3" ? "Phi3ForCausalLM" : "LlamaForCausalLM"],
    model_type: arch === "qwen3" || arch === "phi3" ? arch : "llama",
    hidden_size: hidden,
    intermediate_size: Math.max(...ff),
    num_hidden_layers: layers,
    num_attention_heads: maxHeads,
    num_key_value_heads: Math.max(...kvHeads),
    head_dim: headDim,
    vocab_size: vocab,
    max_position_embeddings: num("context_length")!,
    rms_norm_eps: num("attention.layer_norm_rms_epsilon")!,
    rope_theta: num("rope.freq_base", false) ?? 10000,
    ...(ropeScaling ? { rope_scaling: ropeScaling } : {}),
    tie_word_embeddings: !gguf.tensors.has("output.weight"),
    attention_bias: gguf.tensors.has("blk.0.attn_q.bias"),
    mlp_bias: gguf.tensors.has("blk.0.ffn_up.bias"),
    hidden_act: "silu",
    torch_dtype: "float32",
  };
  if (arch === "phi3") raw.sliding_window = num("attention.sliding_window", false) ?? null;
  if (arch === "gemma3") {
    delete raw.hidden_act;
    Object.assign(raw, gemma3ConfigFields((k) => num(k, false), (k) => meta.get(`${arch}.${k}`)?.value, layers, hidden, maxHeads, headDim));
  }
  const bos = tokenIds("bos_token_id");
  const eos = tokenIds("eos_token_id");
  if (bos !== undefined) raw.bos_token_id = bos;
  if (eos !== undefined) raw.eos_token_id = eos;
  if (!(uniform(heads) && uniform(kvHeads) && uniform(ff))) {
    raw[LAYER_SHAPES_KEY] = heads.map((h, i) => ({ num_attention_heads: h, num_key_value_heads: kvHeads[i], intermediate_size: ff[i] }));
  }
  return { config: parseLlamaConfig(raw, file), arch: arch as GgufArch };
}

/**
 * config.json's rope_scaling for a file with `rope_freqs.weight` (Llama 3.1/3.2 as llama.cpp's
 * converter and slimtune write them), recovered from its factors; null without the tensor. Factors
 * no Llama 3 scaling gives, or the tensor in an architecture whose llama.cpp graph ignores it, are
 * refused rather than read as plain RoPE.
 */
function ggufRopeScaling(gguf: GgufFile, arch: string, headDim: number, ropeTheta: number): Record<string, unknown> | null {
  const t = gguf.tensors.get(ROPE_FREQS_TENSOR);
  if (!t) return null;
  const fail = (why: string): never => {
    throw new SlimtuneError("E_GGUF", `${ROPE_FREQS_TENSOR} ${why}`, gguf.file);
  };
  if (arch !== "llama" && arch !== "deci") fail(`is in a ${arch} model; slimtune reads Llama 3 RoPE scaling in llama and deci models only`);
  if (t.ne.length !== 1 || t.ne[0] !== headDim / 2) fail(`has ne [${t.ne.join(", ")}]; expected [${headDim / 2}] (head size ${headDim} / 2)`);
  const factors = readTensor(gguf, ROPE_FREQS_TENSOR);
  const s = llama3ScalingFromFactors({ headDim, ropeTheta }, factors);
  if (s === null) fail(`holds factors no Llama 3 RoPE scaling (rope_type "llama3") gives (from ${factors[0]} to ${factors.at(-1)}); slimtune implements plain RoPE and Llama 3's scaling`);
  if (!s) return null;
  return { rope_type: "llama3", factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalMaxPositions };
}

/** Every weight the config needs, dequantized to float32 in slimtune's layout; a tensor the model does not use is refused. */
function ggufLlamaWeights(gguf: GgufFile, config: LlamaConfig, arch: GgufArch): Map<string, HostParam> {
  const layers = config.numLayers;
  const fail = (why: string): never => {
    throw new SlimtuneError("E_GGUF", why, gguf.file);
  };
  const weights = new Map<string, HostParam>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const g = ggufTensorName(name, arch);
    if (!gguf.tensors.has(g) && isRemoved(config, name)) {
      // deci writes nothing for a layer without attention; slimtune keeps empty weights and a unit norm.
      weights.set(name, { data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape: [...shape] });
      continue;
    }
    const t = gguf.tensors.get(g) ?? fail(`has no tensor "${g}", which a ${layers}-layer model with these widths needs`);
    const want = [...shape].reverse();
    if (t.ne.length !== want.length || t.ne.some((d, i) => d !== want[i])) {
      fail(`tensor "${g}" has ne [${t.ne.join(", ")}]; the model's hyperparameters say [${want.join(", ")}]`);
    }
    let data = readTensor(gguf, g);
    const headsOf = qkHeads(config, name);
    if (headsOf > 0) data = permuteQK(data, headsOf, config.headDim, "hf");
    if (arch === "gemma3" && isShiftedNorm(name)) data = unshiftNorm(data);
    weights.set(name, { data, shape: [...shape] });
  }
  // By the names this model's tensors get (ffn_up is up_proj in llama, gate_up_proj in phi3).
  const expected = new Set([...weights.keys()].map((n) => ggufTensorName(n, arch)));
  // Read into the config's rope scaling (ggufRopeScaling); all ones is plain RoPE, also used.
  if (gguf.tensors.has(ROPE_FREQS_TENSOR)) expected.add(ROPE_FREQS_TENSOR);
  for (const name of gguf.tensors.keys()) {
    if (!expected.has(name)) fail(`has tensor "${name}", which slimtune's ${arch} model does not use`);
  }
  return weights;
}
