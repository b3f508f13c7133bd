// GPT-2 in GGUF as llama.cpp's `gpt2` architecture writes and reads it (convert_hf_to_gguf.py's
// GPT2Model, llama-model.cpp's LLM_ARCH_GPT2): tensor names, and the hyperparameters its loader
// reads, and reading such a file back. llama.cpp takes the linear weights as nn.Linear's [out, in] (the converter transposes the
// Conv1D weights), which is how slimtune holds them, so they are written as they are.

import type { LlamaConfig } from "../../arch/llama/config.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { shownJson } from "../../core/json.js";
import { CONFIG_LIMITS, parseLlamaConfig } from "../hf-config.js";
import { type GgufFile, readTensor } from "./reader.js";
import { tokenizerFromGguf } from "./tokenizer.js";
import type { GgufValue } from "./writer.js";

const GLOBAL: Record<string, string> = {
  "transformer.wte.weight": "token_embd.weight",
  "transformer.wpe.weight": "position_embd.weight",
  "transformer.ln_f.weight": "output_norm.weight",
  "transformer.ln_f.bias": "output_norm.bias",
};

const LAYER: Record<string, string> = {
  ln_1: "attn_norm",
  "attn.c_attn": "attn_qkv",
  "attn.c_proj": "attn_output",
  ln_2: "ffn_norm",
  "mlp.c_fc": "ffn_up",
  "mlp.c_proj": "ffn_down",
};

/** The GGUF name of a GPT-2 tensor (transformer.h.3.mlp.c_fc.bias → blk.3.ffn_up.bias), or null for any other name. */
export function gpt2GgufName(hf: string): string | null {
  const global = GLOBAL[hf];
  if (global) return global;
  const m = /^transformer\.h\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const module = m ? LAYER[m[2]!] : undefined;
  return module ? `blk.${m![1]}.${module}.${m![3]}` : null;
}

/** The gpt2.* keys llama.cpp's loader reads: no RoPE keys (GPT-2 has none), LayerNorm's epsilon. */
export function gpt2Hyperparameters(config: LlamaConfig): Array<[string, GgufValue]> {
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  return [
    ["gpt2.context_length", u32(config.maxPositionEmbeddings)],
    ["gpt2.embedding_length", u32(config.hiddenSize)],
    ["gpt2.block_count", u32(config.numLayers)],
    ["gpt2.feed_forward_length", u32(config.intermediateSize)],
    ["gpt2.attention.head_count", u32(config.numHeads)],
    ["gpt2.attention.layer_norm_epsilon", { type: "f32", value: config.rmsNormEps }],
    ["gpt2.vocab_size", u32(config.vocabSize)],
  ];
}

/**
 * A `gpt2` GGUF model read back: GPT2Config fields from the gpt2.* keys, float32 weights under
 * slimtune's names (dequantized; linear weights [out, in], as llama.cpp stores them).
 */
export function readGpt2Gguf(gguf: GgufFile): { config: LlamaConfig; weights: Map<string, HostParam> } {
  const meta = gguf.metadata;
  const fail = (why: string): never => {
    throw new SlimtuneError("E_GGUF", why, gguf.file);
  };
  const num = (key: string): number => {
    const v = meta.get(`gpt2.${key}`)?.value;
    return typeof v === "number" && Number.isFinite(v) ? v : fail(`gpt2.${key} is ${shownJson(v)}; expected a number`);
  };
  if (meta.get("general.type")?.value === "adapter") fail("is a LoRA adapter, not a model; pass the base model GGUF as --model");
  const embed = gguf.tensors.get("token_embd.weight") ?? fail("has no token_embd.weight");
  const vocab = embed.ne[1]!;
  tokenizerFromGguf(meta, gguf.file); // fails early on a tokenizer slimtune cannot rebuild
  const tokenId = (key: string) => {
    const v = meta.get(`tokenizer.ggml.${key}`)?.value;
    return typeof v === "number" && v < vocab ? v : null;
  };
  const layers = num("block_count");
  if (!Number.isInteger(layers) || layers < 1 || layers > CONFIG_LIMITS.num_hidden_layers) fail(`gpt2.block_count is ${layers}; expected an integer from 1 to ${CONFIG_LIMITS.num_hidden_layers}`);
  const raw = {
    architectures: ["GPT2LMHeadModel"],
    model_type: "gpt2",
    n_embd: num("embedding_length"),
    n_layer: layers,
    n_head: num("attention.head_count"),
    n_inner: num("feed_forward_length"),
    n_positions: num("context_length"),
    vocab_size: vocab,
    layer_norm_epsilon: num("attention.layer_norm_epsilon"),
    activation_function: "gelu_new",
    tie_word_embeddings: !gguf.tensors.has("output.weight"),
    bos_token_id: tokenId("bos_token_id"),
    eos_token_id: tokenId("eos_token_id"),
    torch_dtype: "float32",
  };
  const config = parseLlamaConfig(raw, gguf.file);
  const weights = new Map<string, HostParam>();
  const used = new Set<string>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const g = gpt2GgufName(name) ?? (name === "lm_head.weight" ? "output.weight" : fail(`slimtune has no GGUF name for "${name}"`));
    const t = gguf.tensors.get(g) ?? fail(`has no tensor "${g}", which a ${layers}-layer gpt2 model with these widths needs`);
    const want = [...shape].reverse();
    if (t.ne.length !== want.length || t.ne.some((d, i) => d !== want[i])) fail(`tensor "${g}" has ne [${t.ne.join(", ")}]; the model's hyperparameters say [${want.join(", ")}]`);
    weights.set(name, { data: readTensor(gguf, g), shape: [...shape] });
    used.add(g);
  }
  for (const name of gguf.tensors.keys()) if (!used.has(name)) fail(`has tensor "${name}", which slimtune's gpt2 model does not use`);
  return { config, weights };
}
