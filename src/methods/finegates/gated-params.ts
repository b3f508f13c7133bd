// Stochastic gates (Gaussian-relaxed Bernoulli, STG): z = clamp(μ + 0.5 + ε, 0, 1), ε ~ N(0, σ²)
// while training, ε = 0 in evaluation. Gates sit where removal can act on them:
// - one gate per MLP channel (the down_proj column gate, shared with the gate/up rows it implies),
// - one gate per attention head (the o_proj column gates of that head, tied),
// - per-dimension row/column gates on the residual side (q/k/v/gate/up inputs, o/down outputs),
//   which adapt the model but cannot remove anything and so carry no penalty.
// The relaxed-L0 penalty λ·|mean Φ((μ + 0.5)/σ) − (1 − target)| per channel or head vector pulls
// each layer's expected open fraction toward the target.

import { type Graph, type Value, abs, add, clip, erf, expand, mul, reduceMean, reshape, sub } from "../../engine/index.js";
import { READS_RESIDUAL, WRITES_RESIDUAL, linearModuleOf } from "../../arch/llama/shapes.js";
import type { ParamSource } from "../../arch/params.js";

export interface GateSettings {
  sigma: number;
  lambda: number;
  targetSparsity: number;
}

/** The gate vectors of a model: name → length, and what each one gates. */
export interface GateLayout {
  /** Per layer: MLP channel count and head count / head dim (0 when the sub-block is absent). */
  layers: Array<{ prefix: string; channels: number; heads: number; headDim: number }>;
  /** Residual-side gates: module path → [N, K] of the layer. */
  residual: Map<string, readonly [number, number]>;
}

export const channelGate = (layerPrefix: string) => `finegates.${layerPrefix}.mlp.channels_mu`;
export const headGate = (layerPrefix: string) => `finegates.${layerPrefix}.self_attn.heads_mu`;
export const residualGate = (path: string, side: "row" | "col") => `finegates.${path}.${side}_mu`;
export const noiseOf = (gate: string) => gate.replace(/^finegates\./, "finegates_noise.");

/** Layers whose input is the residual stream: a column gate there adapts what they read. */
export const isInputSide = (path: string): boolean => READS_RESIDUAL.has(linearModuleOf(path)!);
/** Layers whose output joins the residual stream: a row gate there adapts what they write. */
export const isOutputSide = (path: string): boolean => WRITES_RESIDUAL.has(linearModuleOf(path)!);

export class GatedParams implements ParamSource {
  readonly graph: Graph;
  private readonly terms: Value[] = [];
  private readonly byPrefix: Map<string, GateLayout["layers"][number]>;

  constructor(
    private readonly base: ParamSource,
    private readonly layout: GateLayout,
    private readonly settings: GateSettings,
    private readonly training: boolean,
  ) {
    this.graph = base.graph;
    this.byPrefix = new Map(layout.layers.map((l) => [l.prefix, l]));
  }

  tensor(name: string): Value {
    return this.base.tensor(name);
  }

  linear(path: string, x: Value): Value {
    const prefix = path.replace(/\.(self_attn|mlp)\.\w+$/, "");
    const layer = this.byPrefix.get(prefix);
    const residual = this.layout.residual.get(path);
    let input = x;
    if (residual && isInputSide(path)) input = mul(input, this.gate(residualGate(path, "col"), residual[1], false));
    if (layer && path.endsWith(".mlp.down_proj")) input = mul(input, this.gate(channelGate(prefix), layer.channels, true));
    if (layer && path.endsWith(".self_attn.o_proj")) {
      const { heads, headDim } = layer;
      const perHead = reshape(this.gate(headGate(prefix), heads, true), [heads, 1]);
      input = mul(input, reshape(expand(perHead, [heads, headDim]), [heads * headDim]));
    }
    const y = this.base.linear(path, input);
    return residual && isOutputSide(path) ? mul(y, this.gate(residualGate(path, "row"), residual[0], false)) : y;
  }

  penalty(): Value | null {
    if (this.terms.length === 0) return null;
    let total = this.terms[0]!;
    for (const t of this.terms.slice(1)) total = add(total, t);
    return mul(total, this.graph.scalar(this.settings.lambda));
  }

  private gate(name: string, n: number, penalized: boolean): Value {
    const g = this.graph;
    const { sigma, targetSparsity } = this.settings;
    const shifted = add(g.input(name, [n]), g.scalar(0.5));
    const z = clip(this.training ? add(shifted, g.input(noiseOf(name), [n])) : shifted, 0, 1);
    if (this.training && penalized) {
      // P(z > 0) = Φ((μ + 0.5)/σ) = ½(1 + erf((μ + 0.5)/(σ√2)))
      const open = mul(add(erf(mul(shifted, g.scalar(1 / (sigma * Math.SQRT2)))), g.scalar(1)), g.scalar(0.5));
      this.terms.push(abs(sub(reshape(reduceMean(open, [0]), []), g.scalar(1 - targetSparsity))));
    }
    return z;
  }
}

/** Evaluation-mode gate values clamp(μ + 0.5, 0, 1), computed on the host. */
export function gateValues(mu: Float32Array): Float32Array {
  return mu.map((m) => Math.min(1, Math.max(0, m + 0.5)));
}
