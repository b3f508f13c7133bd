// A loaded model folder as a ScoringModel, with no adapter: float weights baked in, or a quantized
// model through its fastest frozen form (MatMulNBits where the layer allows it). For generation the
// integer kernels run at accuracy level 4 and other kinds are dequantized once into float.

import { frozenScoring } from "./llama/scoring.js";
import type { LoadedBase } from "./load.js";
import { QuantizedParams } from "./parts/quantized-params.js";
import type { ScoringModel } from "./scoring.js";
import { describeBase } from "./describe.js";

export function baseScoring(base: LoadedBase, opts: { generation?: boolean } = {}): ScoringModel & { description: string } {
  if (base.kind === "float") return { ...frozenScoring(base.model), description: describeBase(base) };
  const qm = base.model;
  if (opts.generation) {
    return {
      config: qm.config,
      params: (g) => new QuantizedParams(g, qm, { fused: true, accuracyLevel: 4, dequantizeUnfused: true, ...(qm.tables ? { tables: qm.tables } : {}) }),
      weightFeeds: () => ({}),
      cacheKey: qm.tables ? "quantized-generation-tables" : "quantized-generation",
      description: `${describeBase(base)}, through MatMulNBits at accuracy level 4 where possible, else dequantized`,
    };
  }
  return {
    config: qm.config,
    params: (g) => new QuantizedParams(g, qm, { fused: true, ...(qm.tables ? { tables: qm.tables } : {}) }),
    weightFeeds: () => ({}),
    cacheKey: qm.tables ? "quantized-tables" : "quantized",
    description: `${describeBase(base)}, through MatMulNBits where possible`,
  };
}
