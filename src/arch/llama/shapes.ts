// Every parameter of the LLaMA family with its shape, and the one list of its linear layers: the
// modules the graph routes through ParamSource.linear, which quantizers, adapters, gates and
// pruning all act on.

import { type LlamaConfig, isGpt2, layerShape } from "./config.js";
import { EMBED, FINAL_NORM, LM_HEAD, layerPrefix } from "./names.js";
import { GPT2_MODULES, type Gpt2Module } from "../gpt2/names.js";
import { gpt2LinearLayers, gpt2ParamShapes } from "../gpt2/shapes.js";

export type AttentionModule = "q_proj" | "k_proj" | "v_proj" | "o_proj" | "qkv_proj";
export type MlpModule = "gate_proj" | "up_proj" | "down_proj" | "gate_up_proj";
export type LinearModule = AttentionModule | MlpModule | Gpt2Module;

const ATTENTION_MODULES: readonly AttentionModule[] = ["q_proj", "k_proj", "v_proj", "o_proj"];
const MLP_MODULES: readonly MlpModule[] = ["gate_proj", "up_proj", "down_proj"];

/** The leaf names of a block's linear layers, in model order (PEFT's "all-linear" for llama, minus lm_head). */
export const LINEAR_MODULES: readonly LinearModule[] = [...ATTENTION_MODULES, ...MLP_MODULES];

/** The fused layers of a model with fusedProjections (phi3) and the split layers each one holds. */
export const FUSED_PARTS: Readonly<Record<"qkv_proj" | "gate_up_proj", readonly LinearModule[]>> = {
  qkv_proj: ["q_proj", "k_proj", "v_proj"],
  gate_up_proj: ["gate_proj", "up_proj"],
};
const FUSED_MODULES: readonly LinearModule[] = ["qkv_proj", "gate_up_proj"];

/** The leaf names of the config's linear layers, in model order. */
export function linearModulesOf(config: Pick<LlamaConfig, "fusedProjections" | "modelType">): readonly LinearModule[] {
  if (isGpt2(config)) return GPT2_MODULES;
  return config.fusedProjections ? ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"] : LINEAR_MODULES;
}

/** Modules that read the residual stream (their input is the normed hidden state). */
export const READS_RESIDUAL: ReadonlySet<LinearModule> = new Set(["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "qkv_proj", "gate_up_proj"]);
/** Modules that write into the residual stream (their output is added to it). */
export const WRITES_RESIDUAL: ReadonlySet<LinearModule> = new Set(["o_proj", "down_proj"]);

/** The module path of a linear layer, e.g. linearPath(0, "up_proj") = "model.layers.0.mlp.up_proj". */
export function linearPath(layer: number, module: LinearModule): string {
  const block = (ATTENTION_MODULES as readonly string[]).includes(module) || module === "qkv_proj" ? "self_attn" : "mlp";
  return `${layerPrefix(layer)}.${block}.${module}`;
}

/** The leaf name ("q_proj", …) of a linear layer's path, or null for any other path. */
export function linearModuleOf(path: string): LinearModule | null {
  const leaf = path.slice(path.lastIndexOf(".") + 1);
  return ([...LINEAR_MODULES, ...FUSED_MODULES, ...GPT2_MODULES] as readonly string[]).includes(leaf) ? (leaf as LinearModule) : null;
}

/** One linear layer: its path, layer index, leaf name, and W's [N, K] = [out, in]. */
export interface LinearLayer {
  path: string;
  layer: number;
  module: LinearModule;
  outFeatures: number;
  inFeatures: number;
  bias: boolean;
}

/**
 * Every linear layer the graph calls, in model order. A pruned layer that lost every head (or every
 * MLP channel) has no attention (MLP) sub-block, so its modules are not listed.
 */
export function linearLayers(config: LlamaConfig): LinearLayer[] {
  if (isGpt2(config)) return gpt2LinearLayers(config);
  const { hiddenSize: C, headDim: D } = config;
  const out: LinearLayer[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    const add = (module: LinearModule, n: number, k: number, bias: boolean) =>
      out.push({ path: linearPath(i, module), layer: i, module, outFeatures: n, inFeatures: k, bias });
    if (config.fusedProjections) {
      add("qkv_proj", (H + 2 * KV) * D, C, false);
      add("o_proj", C, H * D, false);
      add("gate_up_proj", 2 * F, C, false);
      add("down_proj", C, F, false);
      continue;
    }
    if (H > 0) {
      add("q_proj", H * D, C, config.attentionBias);
      add("k_proj", KV * D, C, config.attentionBias);
      add("v_proj", KV * D, C, config.attentionBias);
      add("o_proj", C, H * D, config.outputBias);
    }
    if (F > 0) {
      add("gate_proj", F, C, config.mlpBias);
      add("up_proj", F, C, config.mlpBias);
      add("down_proj", C, F, config.mlpBias);
    }
  }
  return out;
}

/** Every parameter of `LlamaForCausalLM` (HF names) and its PyTorch shape, e.g. q_proj [H·hd, C]. */
export function llamaParamShapes(config: LlamaConfig): Map<string, number[]> {
  if (isGpt2(config)) return gpt2ParamShapes(config);
  const { hiddenSize: C, headDim: hd, vocabSize: V } = config;
  const shapes = new Map<string, number[]>();
  shapes.set(EMBED, [V, C]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = layerPrefix(i);
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    shapes.set(`${p}.input_layernorm.weight`, [C]);
    if (config.fusedProjections) {
      shapes.set(`${p}.self_attn.qkv_proj.weight`, [(H + 2 * KV) * hd, C]);
      shapes.set(`${p}.self_attn.o_proj.weight`, [C, H * hd]);
      shapes.set(`${p}.post_attention_layernorm.weight`, [C]);
      shapes.set(`${p}.mlp.gate_up_proj.weight`, [2 * F, C]);
      shapes.set(`${p}.mlp.down_proj.weight`, [C, F]);
      continue;
    }
    const attention: Array<[AttentionModule, number, number, boolean]> = [
      ["q_proj", H * hd, C, config.attentionBias],
      ["k_proj", KV * hd, C, config.attentionBias],
      ["v_proj", KV * hd, C, config.attentionBias],
      ["o_proj", C, H * hd, config.outputBias],
    ];
    for (const [name, out, inp, bias] of attention) {
      shapes.set(`${p}.self_attn.${name}.weight`, [out, inp]);
      if (bias) shapes.set(`${p}.self_attn.${name}.bias`, [out]);
    }
    if (config.qkNorm) {
      shapes.set(`${p}.self_attn.q_norm.weight`, [hd]);
      shapes.set(`${p}.self_attn.k_norm.weight`, [hd]);
    }
    shapes.set(`${p}.post_attention_layernorm.weight`, [C]);
    if (config.gemma3) {
      // Gemma 3's two extra norms around the MLP (post_attention_layernorm is on the attention output).
      shapes.set(`${p}.pre_feedforward_layernorm.weight`, [C]);
      shapes.set(`${p}.post_feedforward_layernorm.weight`, [C]);
    }
    const mlp: Array<[MlpModule, number, number]> = [
      ["gate_proj", F, C],
      ["up_proj", F, C],
      ["down_proj", C, F],
    ];
    for (const [name, out, inp] of mlp) {
      shapes.set(`${p}.mlp.${name}.weight`, [out, inp]);
      if (config.mlpBias) shapes.set(`${p}.mlp.${name}.bias`, [out]);
    }
  }
  shapes.set(FINAL_NORM, [C]);
  if (!config.tieWordEmbeddings) shapes.set(LM_HEAD, [V, C]);
  return shapes;
}

/** The module paths of `linearLayers(config)`, in model order. */
export function linearPaths(config: LlamaConfig): string[] {
  return linearLayers(config).map((l) => l.path);
}
