// Where a model graph gets its weights: the seam through which methods (PEQA, LoRA, gates…)
// replace plain linear layers without touching the model's code.

import { type Graph, type Value, add, gemm } from "../../engine/index.js";

export interface HostParam {
  data: Float32Array;
  shape: number[];
}

export interface ParamSource {
  readonly graph: Graph;
  /** A plain tensor: embeddings, norm weights. */
  tensor(name: string): Value;
  /** y = x Wᵀ (+ b) for the module at `path` (e.g. "model.layers.0.mlp.up_proj"); x: [N, in]. */
  linear(path: string, x: Value): Value;
  /** A regularizer the method adds to the training loss (e.g. FineGates' L0 term), once the model is built. */
  penalty?(): Value | null;
}

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
