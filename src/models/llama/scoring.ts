// A frozen model as a ScoringModel: every weight baked into the graph as an initializer.

import type { ScoringModel } from "../../eval/perplexity.js";
import type { LlamaModel } from "./model.js";
import { DenseParams } from "./params.js";

export function frozenScoring(model: LlamaModel): ScoringModel {
  return {
    config: model.config,
    params: (g) => new DenseParams(g, model.weights, new Set()),
    weightFeeds: () => ({}),
    cacheKey: "frozen",
  };
}
