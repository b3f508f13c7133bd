// A loaded model folder as a ScoringModel, with no adapter: float weights baked in, or a quantized
// model through its fastest frozen form (MatMulNBits where the layer allows it).

import { frozenScoring } from "./llama/scoring.js";
import type { LoadedBase } from "./load.js";
import { QuantizedParams } from "./parts/quantized-params.js";
import type { ScoringModel } from "./scoring.js";

export function baseScoring(base: LoadedBase): ScoringModel & { description: string } {
  if (base.kind === "float") return { ...frozenScoring(base.model), description: "float model" };
  const qm = base.model;
  return {
    config: qm.config,
    params: (g) => new QuantizedParams(g, qm, { fused: true }),
    weightFeeds: () => ({}),
    cacheKey: "quantized",
    description: qm.spec.scheme === "reallm" ? "ReALLM model (low-rank + vector-quantized residual)" : `${qm.spec.scheme} ${qm.spec.bits}-bit model (MatMulNBits where possible)`,
  };
}
