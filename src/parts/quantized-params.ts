// Weights of a quantized model for a graph: float tensors (embeddings, norms) as constants and every
// block linear layer quantized; scales either frozen constants or graph inputs (PEQA trains them).

import type { Graph, Value } from "../engine/index.js";
import type { ParamSource } from "../models/llama/params.js";
import type { QuantizedModel } from "../quant/types.js";
import { quantizedLinear } from "./quantized-linear.js";

export const scaleName = (path: string) => `${path}.scales`;

/** The shape a layer's scales take as a graph input: [N] per channel, [N, G] per group. */
export function scaleShape(qm: QuantizedModel, path: string): number[] {
  const q = qm.linears.get(path)!;
  const G = q.inFeatures / q.groupSize;
  return G === 1 ? [q.outFeatures] : [q.outFeatures, G];
}

export interface QuantizedParamsOptions {
  /** Scales become graph inputs named `<path>.scales`, fed at run time (training, task switching). */
  scaleInputs?: boolean;
  /** Frozen inference through MatMulNBits where the layer allows it (ignored with scaleInputs). */
  fused?: boolean;
}

export class QuantizedParams implements ParamSource {
  private readonly dense = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    private readonly qm: QuantizedModel,
    private readonly opts: QuantizedParamsOptions = {},
  ) {}

  tensor(name: string): Value {
    let v = this.dense.get(name);
    if (!v) {
      const w = this.qm.dense.get(name);
      if (!w) throw new Error(`quantized model has no float tensor "${name}"`);
      v = this.graph.constant(w.data, w.shape, "float32", name);
      this.dense.set(name, v);
    }
    return v;
  }

  linear(path: string, x: Value): Value {
    const q = this.qm.linears.get(path);
    if (!q) throw new Error(`quantized model has no linear layer "${path}"`);
    const scales = this.opts.scaleInputs ? this.graph.input(scaleName(path), scaleShape(this.qm, path)) : undefined;
    return quantizedLinear(x, q, path, { scales, fused: this.opts.fused && !this.opts.scaleInputs });
  }
}
