// Dependency groups of the LLaMA family: the smallest structures that can be removed together
// without breaking the computation (LLM-Pruner's groups). An attention head owns D rows of q_proj
// and the same D columns of o_proj; a key/value group owns D rows of k_proj and v_proj and every
// query head that reads it (GQA); an MLP channel owns a row of gate_proj and up_proj and a column of
// down_proj. Importance scores sum over a group's slices; pruning keeps or removes whole groups.

import { SlimtuneError } from "../../core/errors.js";
import { type LlamaConfig, isGpt2, layerShape } from "./config.js";
import { type LinearModule, linearPath } from "./shapes.js";

/**
 * Structured pruning cuts rows of q_proj and gate_proj; a model that stores them fused with other
 * projections (phi3's qkv_proj, gate_up_proj) is refused before any work.
 */
export function assertPrunable(config: LlamaConfig, what: string): void {
  if (isGpt2(config)) {
    throw new SlimtuneError("E_ARG", `${what} does not support gpt2 yet: its q/k/v projections are one fused c_attn layer and pruning removes rows of each one separately`);
  }
  if (config.fusedProjections) {
    throw new SlimtuneError("E_ARG", `${what} does not support ${config.modelType} yet: its q/k/v and gate/up projections are fused (qkv_proj, gate_up_proj) and pruning removes rows of each one separately`);
  }
  if (config.gemma3) {
    // Not built yet: a pruned Gemma 3 would need per-layer widths in its graph and in its exports
    // (llama.cpp's gemma3 has no per-layer head counts).
    throw new SlimtuneError("E_ARG", `${what} does not support gemma3_text yet: structured pruning of Gemma 3's heads and MLP channels is not implemented; quantize or fine-tune it instead`);
  }
}

/** A contiguous run of rows (axis 0) or columns (axis 1) of one linear layer's W [N, K]. */
export interface Slice {
  path: string;
  module: LinearModule;
  axis: 0 | 1;
  start: number;
  count: number;
}

export type GroupKind = "head" | "kv-group" | "channel";

const slice = (layer: number, module: LinearModule, axis: 0 | 1, start: number, count: number): Slice => ({
  path: linearPath(layer, module),
  module,
  axis,
  start,
  count,
});

/** Query heads per key/value head in `layer` (0 when the layer has no attention left). */
export function headsPerKvGroup(config: LlamaConfig, layer: number): number {
  const { numHeads, numKvHeads } = layerShape(config, layer);
  return numKvHeads > 0 ? numHeads / numKvHeads : 0;
}

/** Head h of `layer`: its q_proj rows and o_proj columns. */
export function headSlices(config: LlamaConfig, layer: number, h: number): Slice[] {
  const D = config.headDim;
  return [slice(layer, "q_proj", 0, h * D, D), slice(layer, "o_proj", 1, h * D, D)];
}

/** The query heads that read key/value head g of `layer`. */
export function kvGroupHeads(config: LlamaConfig, layer: number, g: number): number[] {
  const rep = headsPerKvGroup(config, layer);
  return Array.from({ length: rep }, (_, r) => g * rep + r);
}

/** Key/value group g of `layer`: its k/v rows and every slice of the query heads that read it. */
export function kvGroupSlices(config: LlamaConfig, layer: number, g: number): Slice[] {
  const D = config.headDim;
  return [
    slice(layer, "k_proj", 0, g * D, D),
    slice(layer, "v_proj", 0, g * D, D),
    ...kvGroupHeads(config, layer, g).flatMap((h) => headSlices(config, layer, h)),
  ];
}

/** MLP channel j of `layer`: a row of gate_proj and up_proj, a column of down_proj. */
export function channelSlices(layer: number, j: number): Slice[] {
  return [slice(layer, "gate_proj", 0, j, 1), slice(layer, "up_proj", 0, j, 1), slice(layer, "down_proj", 1, j, 1)];
}

/** How many groups of each kind `layer` has now. */
export function groupCounts(config: LlamaConfig, layer: number): Record<GroupKind, number> {
  const { numHeads, numKvHeads, intermediateSize } = layerShape(config, layer);
  return { head: numHeads, "kv-group": numKvHeads, channel: intermediateSize };
}
