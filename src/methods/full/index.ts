// Full fine-tuning: every weight trains; the result is a complete Hugging Face model folder.

import type { Graph } from "../../engine/index.js";
import type { LlamaModel } from "../../models/llama/model.js";
import { DenseParams } from "../../models/llama/params.js";
import { defaultDecay } from "../../train/adamw.js";
import type { TuningMethod } from "../method.js";

export function fullFineTuning(model: LlamaModel): TuningMethod {
  const names = new Set(model.weights.keys());
  return {
    name: "full",
    config: model.config,
    trainable: model.weights,
    params: (graph: Graph) => new DenseParams(graph, model.weights, names),
    decay: defaultDecay,
    save: (outDir: string) => model.save(outDir),
    totalParameters: model.parameterCount,
  };
}
