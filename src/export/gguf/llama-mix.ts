// The per-tensor types of llama.cpp's quantization presets (llama-quantize's Q2_K, Q3_K_S/M/L,
// Q4_K_S/M, Q5_K_S/M, Q6_K), as llama_tensor_get_type (src/llama-quant.cpp) chooses them for a
// LLaMA-style model with one expert, restated:
//   - output.weight, and token_embd.weight when the embeddings are tied (no output.weight): Q6_K,
//     or Q8_0 when its rows are not whole blocks of the preset's type;
//   - attn_v of some layers and ffn_down of some layers get more bits (use_more_bits: the first and
//     last eighth of the layers and every third in between), attn_output more bits in the Q2_K and
//     Q3_K mixes;
//   - then the fallback for a row length that is not a multiple of the type's block (256 for the
//     k-quants): Q2_K, Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and F16 when even that
//     block does not divide the row.
// Uniform dtypes (`q4_k`: every matrix Q4_K, as llama-quantize --pure) use the same fallback.
// Not restated: Falcon's rules, mixture-of-experts rules, and the 70B attn_v bump (LLM_TYPE_70B).
// The counters of attn_v and ffn_down tensors follow llama.cpp's order: layer by layer.

import { GGML_TYPES, type GgmlType } from "../../formats/gguf/ggml-types.js";

export const GGUF_PRESETS = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"] as const;
export type GgufPreset = (typeof GGUF_PRESETS)[number];

/** llama.cpp's LLAMA_FTYPE_MOSTLY_* of each preset: general.file_type of the file. */
export const PRESET_FILE_TYPE: Record<GgufPreset, number> = { q2_k: 10, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13, q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q6_k: 18 };

const DEFAULT_TYPE: Record<GgufPreset, GgmlType> = {
  q2_k: GGML_TYPES.Q2_K,
  q3_k_s: GGML_TYPES.Q3_K,
  q3_k_m: GGML_TYPES.Q3_K,
  q3_k_l: GGML_TYPES.Q3_K,
  q4_k_s: GGML_TYPES.Q4_K,
  q4_k_m: GGML_TYPES.Q4_K,
  q5_k_s: GGML_TYPES.Q5_K,
  q5_k_m: GGML_TYPES.Q5_K,
  q6_k: GGML_TYPES.Q6_K,
};

/** A matrix the file will hold: its GGUF name and row length (ne[0]). */
export interface MixTensor {
  name: string;
  rowLength: number;
}

/** tensor_type_fallback: a type whose block divides the row, or F16; `fellBack` says it changed. */
export function fallbackType(type: GgmlType, rowLength: number): GgmlType {
  if (rowLength % type.blockSize === 0) return type;
  const next: Partial<Record<string, GgmlType>> = { Q2_K: GGML_TYPES.Q4_0, Q3_K: GGML_TYPES.Q4_0, Q4_K: GGML_TYPES.Q5_0, Q5_K: GGML_TYPES.Q5_1, Q6_K: GGML_TYPES.Q8_0 };
  const t = next[type.name];
  return t && rowLength % t.blockSize === 0 ? t : GGML_TYPES.F16;
}

const useMoreBits = (i: number, n: number) => i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;

/**
 * Each matrix's type under `preset`. `tensors` are the quantizable matrices in layer order, `layers`
 * the model's layer count, `gqa` heads per key/value head (of layer 0).
 */
export function presetTypes(preset: GgufPreset, tensors: readonly MixTensor[], layers: number, gqa: number): Map<string, GgmlType> {
  const base = DEFAULT_TYPE[preset];
  const T = GGML_TYPES;
  const tied = !tensors.some((t) => t.name === "output.weight");
  // llama.cpp counts a fused attn_qkv as attn_v-like (category_is_attn_v): Phi-3 and GPT-2 have it.
  const isAttnV = (name: string) => name.endsWith("attn_v.weight") || name.endsWith("attn_qkv.weight");
  const attnV = tensors.filter((t) => isAttnV(t.name)).length;
  let iAttnV = 0;
  let iFfnDown = 0;
  const out = new Map<string, GgmlType>();
  for (const { name, rowLength } of tensors) {
    let type = base;
    if (name === "output.weight" || (tied && name === "token_embd.weight")) {
      type = rowLength % base.blockSize !== 0 ? T.Q8_0 : T.Q6_K;
    } else if (name === "token_embd.weight") {
      type = base;
    } else if (isAttnV(name)) {
      const i = iAttnV++;
      if (preset === "q2_k") type = gqa >= 4 ? T.Q4_K : T.Q3_K;
      else if (preset === "q3_k_m") type = i < 2 ? T.Q5_K : T.Q4_K;
      else if (preset === "q3_k_l") type = T.Q5_K;
      else if ((preset === "q4_k_m" || preset === "q5_k_m") && useMoreBits(i, attnV)) type = T.Q6_K;
      else if (preset === "q4_k_s" && i < 4) type = T.Q5_K;
    } else if (name.endsWith("ffn_down.weight")) {
      const i = iFfnDown++;
      if (preset === "q2_k") type = T.Q3_K;
      else if (preset === "q3_k_m") type = i < Math.trunc(layers / 16) ? T.Q5_K : T.Q4_K;
      else if (preset === "q3_k_l") type = T.Q5_K;
      else if (preset === "q4_k_m" || preset === "q5_k_m") type = useMoreBits(i, layers) ? T.Q6_K : base;
      else if (preset === "q4_k_s" && i < Math.trunc(layers / 8)) type = T.Q5_K;
    } else if (name.endsWith("attn_output.weight")) {
      if (preset === "q2_k") type = T.Q3_K;
      else if (preset === "q3_k_m") type = T.Q4_K;
      else if (preset === "q3_k_l") type = T.Q5_K;
    }
    out.set(name, fallbackType(type, rowLength));
  }
  return out;
}

/** llama.cpp visits tensors by layer (blk.N numerically), then by name: its attn_v and ffn_down counters follow. */
export function llamaOrder(tensors: readonly MixTensor[]): MixTensor[] {
  const layer = (n: string) => Number(/^blk\.(\d+)\./.exec(n)?.[1] ?? -1);
  return [...tensors].sort((a, b) => layer(a.name) - layer(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
