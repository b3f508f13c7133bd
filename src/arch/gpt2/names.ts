// Tensor and module names of transformers' GPT2LMHeadModel, in one place. slimtune holds a GPT-2
// under these names with the "transformer." prefix (the names PEFT adapters and GPTQ folders use),
// and its Conv1D weights as nn.Linear holds them, [out, in]: every linear-layer routine (quantizers,
// LoRA, GPTQ, the graph's gemm) then treats GPT-2 as it treats LLaMA. The files store Conv1D weights
// as [in, out]; formats/ transposes them on load and back on save.

export type Gpt2Module = "c_attn" | "c_proj" | "c_fc";

export const GPT2_MODULES: readonly Gpt2Module[] = ["c_attn", "c_proj", "c_fc"];

/**
 * The LLaMA layer names each GPT-2 layer stands for, so that `--targets q_proj,v_proj` (and the
 * default of all seven) name c_attn, c_proj and c_fc, as PEFT users of GPT-2 write them.
 */
export const GPT2_PARTS: Readonly<Record<Gpt2Module, readonly string[]>> = {
  c_attn: ["q_proj", "k_proj", "v_proj"],
  c_proj: ["o_proj", "down_proj"],
  c_fc: ["gate_proj", "up_proj"],
};

export const GPT2_WTE = "transformer.wte.weight";
export const GPT2_WPE = "transformer.wpe.weight";
/** The final LayerNorm's module path (weight and bias). */
export const GPT2_LN_F = "transformer.ln_f";

export const gpt2LayerPrefix = (i: number): string => `transformer.h.${i}`;

/** Module paths of layer i's four linear layers, in the order the block calls them. */
export function gpt2LinearPaths(i: number): { attn: string; attnOut: string; fc: string; mlpOut: string } {
  const p = gpt2LayerPrefix(i);
  return { attn: `${p}.attn.c_attn`, attnOut: `${p}.attn.c_proj`, fc: `${p}.mlp.c_fc`, mlpOut: `${p}.mlp.c_proj` };
}

const CONV1D_WEIGHT = /^transformer\.h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** A Conv1D weight: stored [in, out] in GPT-2 checkpoints, held [out, in] by slimtune. */
export const isConv1dWeight = (name: string): boolean => CONV1D_WEIGHT.test(name);

/**
 * The names a checkpoint may give `name`: GPT2LMHeadModel's ("transformer.h.0…", "lm_head.weight")
 * or, for the body, GPT2Model's without the prefix ("h.0…", "wte.weight"), as the original
 * openai-community/gpt2 files have it.
 */
export function gpt2StoredNames(name: string): string[] {
  return name.startsWith("transformer.") ? [name, name.slice("transformer.".length)] : [name];
}

/** [rows, cols] row-major → [cols, rows]. */
export function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}
