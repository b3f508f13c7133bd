// Full fine-tuning: every weight trains; the result is a complete Hugging Face model folder.

import { isNormOrBias } from "../../arch/llama/names.js";
import type { Graph } from "../../engine/index.js";
import type { LlamaModel } from "../../models/llama/model.js";
import { DenseParams } from "../../models/llama/params.js";
import { floatBase } from "../base.js";
import { type TuningMethod, defineMethod } from "../method.js";


export function fullFineTuning(model: LlamaModel): TuningMethod {
  const names = new Set(model.weights.keys());
  return {
    name: "full",
    config: model.config,
    trainable: model.weights,
    params: (graph: Graph) => new DenseParams(graph, model.weights, names),
    decay: (name) => !isNormOrBias(name),
    save: (outDir: string) => model.save(outDir),
    totalParameters: model.parameterCount,
  };
}

export const fullDefinition = defineMethod({
  name: "full",
  defaultLr: 1e-4,
  summary: "every weight trains (float model)",
  needs: "float",
  flags: {},
  create: (base) => fullFineTuning(floatBase(base, "full")),
});
