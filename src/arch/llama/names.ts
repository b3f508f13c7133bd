// Tensor and module names of transformers' LlamaForCausalLM (and ForSequenceClassification), in one place.

export const EMBED = "model.embed_tokens.weight";
export const LM_HEAD = "lm_head.weight";
export const FINAL_NORM = "model.norm.weight";
/** LlamaForSequenceClassification's bias-free head on the last real token. */
export const CLS_HEAD = "score.weight";

export const layerPrefix = (i: number): string => `model.layers.${i}`;

/** The layer index of a module path such as "model.layers.3.mlp.up_proj", or null. */
export function layerIndexOf(path: string): number | null {
  const m = /^model\.layers\.(\d+)\./.exec(path);
  return m ? Number(m[1]) : null;
}

/** Norm weights and biases: the parameters transformers' Trainer exempts from weight decay. */
export const isNormOrBias = (name: string): boolean => name.endsWith("norm.weight") || name.endsWith("bias") || /\.ln_(?:\d+|f)\.weight$/.test(name);
