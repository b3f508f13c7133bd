// GPT-2 in GGUF as llama.cpp's `gpt2` architecture writes and reads it (convert_hf_to_gguf.py's
// GPT2Model, llama-model.cpp's LLM_ARCH_GPT2): tensor names, and the hyperparameters its loader
// reads. llama.cpp takes the linear weights as nn.Linear's [out, in] (the converter transposes the
// Conv1D weights), which is how slimtune holds them, so they are written as they are.

import type { LlamaConfig } from "../../arch/llama/config.js";
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
