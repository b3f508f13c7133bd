// A frozen float model as a ScoringModel: every weight baked into the graph as an initializer.

import type { FloatWeights } from "../../arch/params.js";
import type { ScoringModel } from "../scoring.js";
import { DenseParams } from "./params.js";

export function frozenScoring(model: FloatWeights): ScoringModel {
  return {
    config: model.config,
    params: (g) => new DenseParams(g, model.weights, new Set()),
    weightFeeds: () => ({}),
    cacheKey: "frozen",
  };
}
