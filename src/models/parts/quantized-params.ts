// Weights of a quantized model for a graph: float tensors (embeddings, norms, float linears) as
// constants and every quantized linear layer through its kind's graph part; scales either frozen
// constants or graph inputs (PEQA trains them, task switching swaps them).

import type { ParamSource } from "../../arch/params.js";
import type { Graph, Value } from "../../engine/index.js";
import { scaleName, scaleShape } from "../../quant/scales.js";
import type { QuantizedModel } from "../../quant/types.js";
import { DenseParams } from "../llama/params.js";
import { quantizedLinear } from "./quantized-linear.js";

export interface QuantizedParamsOptions {
  /** Scales become graph inputs named `<path>.scales`, fed at run time (training, task switching). */
  scaleInputs?: boolean;
  /** Frozen inference through MatMulNBits where the layer allows it (ignored with scaleInputs). */
  fused?: boolean;
  /** ReALLM layers' L₁, L₂ become graph inputs named by lowRankNames (they train). */
  lowRankInputs?: boolean;
  /** How ReALLM's vector-quantized part enters the graph. */
  vq?: "dequantized" | "gather";
}

/** Graph input names of a ReALLM layer's low-rank factors (also their tensor names in the folder). */
export const lowRankNames = (path: string) => ({ l1: `${path}.lowrank_l1`, l2: `${path}.lowrank_l2` });

export class QuantizedParams implements ParamSource {
  private readonly dense: DenseParams;

  constructor(
    readonly graph: Graph,
    private readonly qm: QuantizedModel,
    private readonly opts: QuantizedParamsOptions = {},
  ) {
    this.dense = new DenseParams(graph, qm.dense, new Set());
  }

  tensor(name: string): Value {
    if (!this.dense.has(name)) throw new Error(`quantized model has no float tensor "${name}"`);
    return this.dense.tensor(name);
  }

  linear(path: string, x: Value): Value {
    const q = this.qm.linears.get(path);
    // A layer the quantization plan left in float is an ordinary dense linear.
    if (!q) return this.dense.linear(path, x);
    if (q.kind === "reallm") {
      const names = lowRankNames(path);
      const r = q.spec.rank;
      const lowRank = this.opts.lowRankInputs && r > 0 ? { l1: this.graph.input(names.l1, [q.outFeatures, r]), l2: this.graph.input(names.l2, [r, q.inFeatures]) } : undefined;
      return quantizedLinear(x, q, path, { lowRank, vq: this.opts.vq });
    }
    const scales = this.opts.scaleInputs ? this.graph.input(scaleName(path), scaleShape(q)) : undefined;
    return quantizedLinear(x, q, path, { scales, fused: this.opts.fused && !this.opts.scaleInputs });
  }
}
