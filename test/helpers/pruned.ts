// ref-llama-5m pruned unevenly: a layer without attention, one without its MLP, and layers with
// different head, key/value-head and channel counts (what FineGates or a pruning plan produces).

import type { LayerKeep } from "../../src/prune/surgery.js";
import { removeStructure } from "../../src/prune/surgery.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { REF_MODEL } from "./paths.js";

const all = (n: number) => Array.from({ length: n }, (_, i) => i);

export function prunedRefModel(): LlamaModel {
  const model = LlamaModel.load(REF_MODEL);
  const keep: LayerKeep[] = all(model.config.numLayers).map((i) => ({
    heads: i === 0 ? [] : i === 2 ? [0, 1, 4, 5] : all(8),
    kvHeads: i === 0 ? [] : i === 2 ? [0, 2] : all(4),
    channels: i === 3 ? [] : i === 1 ? all(352).map((c) => 2 * c) : all(704),
  }));
  return removeStructure(model, keep).model;
}
