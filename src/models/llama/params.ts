// Dense float weights as a ParamSource: the graph's view of a float model.

import type { HostParam, ParamSource } from "../../arch/params.js";
import { type Graph, type Value, add, gemm } from "../../engine/index.js";

/**
 * Dense float weights. Names in `asInputs` become graph inputs, fed at run time (trainable, or
 * changing between runs); the rest are baked in as initializers.
 */
export class DenseParams implements ParamSource {
  private readonly values = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    private readonly weights: ReadonlyMap<string, HostParam>,
    private readonly asInputs: ReadonlySet<string>,
  ) {}

  has(name: string): boolean {
    return this.weights.has(name);
  }

  tensor(name: string): Value {
    let v = this.values.get(name);
    if (!v) {
      const w = this.weights.get(name);
      if (!w) throw new Error(`no weight named "${name}"`);
      v = this.asInputs.has(name) ? this.graph.input(name, w.shape) : this.graph.constant(w.data, w.shape, "float32", name);
      this.values.set(name, v);
    }
    return v;
  }

  linear(path: string, x: Value): Value {
    const y = gemm(x, this.tensor(`${path}.weight`), { transB: true });
    return this.has(`${path}.bias`) ? add(y, this.tensor(`${path}.bias`)) : y;
  }
}
