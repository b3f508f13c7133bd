// Every parameter of GPT-2 with the shape slimtune holds it in (Conv1D weights as [out, in], see
// names.ts), and its linear layers: per block the fused q/k/v projection c_attn, the attention
// output c_proj, and the MLP's c_fc and c_proj, all with biases.

import type { LlamaConfig } from "../llama/config.js";
import { GPT2_LN_F, GPT2_WPE, GPT2_WTE, type Gpt2Module, gpt2LayerPrefix, gpt2LinearPaths } from "./names.js";

export interface Gpt2LinearLayer {
  path: string;
  layer: number;
  module: Gpt2Module;
  outFeatures: number;
  inFeatures: number;
  bias: boolean;
}

/** The linear layers of every block, in model order: c_attn [3C, C], attn.c_proj [C, C], c_fc [F, C], mlp.c_proj [C, F]. */
export function gpt2LinearLayers(config: LlamaConfig): Gpt2LinearLayer[] {
  const { hiddenSize: C, intermediateSize: F } = config;
  const out: Gpt2LinearLayer[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = gpt2LinearPaths(i);
    out.push({ path: p.attn, layer: i, module: "c_attn", outFeatures: 3 * C, inFeatures: C, bias: true });
    out.push({ path: p.attnOut, layer: i, module: "c_proj", outFeatures: C, inFeatures: C, bias: true });
    out.push({ path: p.fc, layer: i, module: "c_fc", outFeatures: F, inFeatures: C, bias: true });
    out.push({ path: p.mlpOut, layer: i, module: "c_proj", outFeatures: C, inFeatures: F, bias: true });
  }
  return out;
}

/** Every parameter of GPT2LMHeadModel by its transformers name, linear weights as [out, in]. */
export function gpt2ParamShapes(config: LlamaConfig): Map<string, number[]> {
  const { hiddenSize: C, vocabSize: V } = config;
  const shapes = new Map<string, number[]>();
  shapes.set(GPT2_WTE, [V, C]);
  shapes.set(GPT2_WPE, [config.maxPositionEmbeddings, C]);
  const linears = gpt2LinearLayers(config);
  for (let i = 0; i < config.numLayers; i++) {
    const p = gpt2LayerPrefix(i);
    const [attn, attnOut, fc, mlpOut] = linears.filter((l) => l.layer === i);
    const linear = (l: Gpt2LinearLayer) => {
      shapes.set(`${l.path}.weight`, [l.outFeatures, l.inFeatures]);
      shapes.set(`${l.path}.bias`, [l.outFeatures]);
    };
    shapes.set(`${p}.ln_1.weight`, [C]);
    shapes.set(`${p}.ln_1.bias`, [C]);
    linear(attn!);
    linear(attnOut!);
    shapes.set(`${p}.ln_2.weight`, [C]);
    shapes.set(`${p}.ln_2.bias`, [C]);
    linear(fc!);
    linear(mlpOut!);
  }
  shapes.set(`${GPT2_LN_F}.weight`, [C]);
  shapes.set(`${GPT2_LN_F}.bias`, [C]);
  if (!config.tieWordEmbeddings) shapes.set("lm_head.weight", [V, C]);
  return shapes;
}
