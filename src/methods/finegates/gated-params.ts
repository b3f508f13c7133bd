// Stochastic gates (Gaussian-relaxed Bernoulli, STG) on the rows and columns of linear layers:
// y = z_r ⊙ (W (z_c ⊙ x) + b), with z = clamp(μ + 0.5 + ε, 0, 1), ε ~ N(0, σ²) while training
// and ε = 0 in evaluation. The relaxed-L0 penalty λ·|mean Φ((μ + 0.5)/σ) − (1 − target)| per gate
// vector pulls each vector's expected open fraction toward the target.

import { type Graph, type Value, abs, add, clip, erf, mul, reduceMean, reshape, sub } from "../../engine/index.js";
import type { ParamSource } from "../../models/llama/params.js";

export interface GateSettings {
  sigma: number;
  lambda: number;
  targetSparsity: number;
}

export const gateName = (path: string, side: "row" | "col") => `finegates.${path}.${side}_mu`;
export const noiseName = (path: string, side: "row" | "col") => `finegates_noise.${path}.${side}`;

export class GatedParams implements ParamSource {
  readonly graph: Graph;
  private readonly terms: Value[] = [];

  constructor(
    private readonly base: ParamSource,
    /** Gated layers: module path → [N, K]. */
    private readonly layers: ReadonlyMap<string, readonly [number, number]>,
    private readonly settings: GateSettings,
    private readonly training: boolean,
  ) {
    this.graph = base.graph;
  }

  tensor(name: string): Value {
    return this.base.tensor(name);
  }

  linear(path: string, x: Value): Value {
    const shape = this.layers.get(path);
    if (!shape) return this.base.linear(path, x);
    const [N, K] = shape;
    const col = this.gate(path, "col", K);
    const row = this.gate(path, "row", N);
    return mul(this.base.linear(path, mul(x, col)), row);
  }

  penalty(): Value | null {
    if (this.terms.length === 0) return null;
    let total = this.terms[0]!;
    for (const t of this.terms.slice(1)) total = add(total, t);
    return mul(total, this.graph.scalar(this.settings.lambda));
  }

  private gate(path: string, side: "row" | "col", n: number): Value {
    const g = this.graph;
    const { sigma, targetSparsity } = this.settings;
    const mu = g.input(gateName(path, side), [n]);
    const shifted = add(mu, g.scalar(0.5));
    const z = clip(this.training ? add(shifted, g.input(noiseName(path, side), [n])) : shifted, 0, 1);
    if (this.training) {
      // P(z > 0) = Φ((μ + 0.5)/σ) = ½(1 + erf((μ + 0.5)/(σ√2)))
      const open = mul(add(erf(mul(shifted, g.scalar(1 / (sigma * Math.SQRT2)))), g.scalar(1)), g.scalar(0.5));
      const meanOpen = reshape(reduceMean(open, [0]), []);
      this.terms.push(abs(sub(meanOpen, g.scalar(1 - targetSparsity))));
    }
    return z;
  }
}

/** Evaluation-mode gate values clamp(μ + 0.5, 0, 1), computed on the host. */
export function gateValues(mu: Float32Array): Float32Array {
  return mu.map((m) => Math.min(1, Math.max(0, m + 0.5)));
}
