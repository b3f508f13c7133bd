// The low-rank branch as a ParamSource wrapper: y = base(x) + scale·(x·Aᵀ)·Bᵀ on target modules,
// with A and B as graph inputs so the trainer feeds and differentiates them. The base can be any
// ParamSource (dense float, or a frozen quantized base for QLoRA).

import { type Graph, type Value, add, gemm } from "../../engine/index.js";
import type { ParamSource } from "../../arch/params.js";

export interface LoraBranch {
  /** Graph input names: PEFT keys `base_model.model.<path>.lora_A.weight` / `.lora_B.weight`. */
  a: string;
  b: string;
  rank: number;
  /** K and N of the wrapped layer W [N, K]. */
  inFeatures: number;
  outFeatures: number;
}

export class LoraParams implements ParamSource {
  readonly graph: Graph;
  private readonly factors = new Map<string, { a: Value; b: Value }>();

  constructor(
    private readonly base: ParamSource,
    /** Branches by module path (e.g. "model.layers.0.self_attn.q_proj"). */
    private readonly branches: ReadonlyMap<string, LoraBranch>,
    private readonly scale: number,
  ) {
    this.graph = base.graph;
  }

  tensor(name: string): Value {
    return this.base.tensor(name);
  }

  linear(path: string, x: Value): Value {
    const y = this.base.linear(path, x);
    const branch = this.branches.get(path);
    if (!branch) return y;
    const { a, b } = this.inputs(path, branch);
    // x·Aᵀ first: (M, K)·(K, r) then (M, r)·(r, N) costs M·r·(K + N), never an (N, K) product.
    const xa = gemm(x, a, { transB: true }); // (M, r)
    return add(y, gemm(xa, b, { transB: true, alpha: this.scale })); // (M, N)
  }

  private inputs(path: string, branch: LoraBranch): { a: Value; b: Value } {
    let f = this.factors.get(path);
    if (!f) {
      f = {
        a: this.graph.input(branch.a, [branch.rank, branch.inFeatures]),
        b: this.graph.input(branch.b, [branch.outFeatures, branch.rank]),
      };
      this.factors.set(path, f);
    }
    return f;
  }
}
