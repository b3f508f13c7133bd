// Quantizes every linear layer of a LLaMA-family model's blocks, one spec for all or one per layer.

import { linearLayers } from "../arch/llama/shapes.js";
import type { FloatWeights, HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { quantizeLinear } from "./kinds/index.js";
import type { RtnStats } from "./kinds/rtn.js";
import { checkQuantSpec, normalizeSpec, resolveGroupSize } from "./spec.js";
import { type QuantSpec, type QuantizedLinear, type QuantizedModel, mostCommonSpec } from "./types.js";

export type QuantizeProgress = (done: number, total: number, layer: string) => void;

/**
 * One spec for every layer, or a spec per module path (mixed precision). A function returning null
 * leaves that layer in float (GPTQModel writes such modules unquantized).
 */
export type QuantPlan = QuantSpec | ((path: string) => QuantSpec | null);

/**
 * Quantizes the q/k/v/o/gate/up/down projections of `model` by `plan`; everything else (embeddings,
 * norms, lm_head, layers the plan leaves in float) goes to `dense`, sharing the model's arrays (not
 * copied). Every spec and every layer's K are checked before any work, so a bad group size fails at
 * once and names the layer.
 */
export function quantizeModel(model: FloatWeights, plan: QuantPlan, onProgress?: QuantizeProgress, stats?: RtnStats): QuantizedModel {
  const specFor = typeof plan === "function" ? plan : () => plan;
  const layers = linearLayers(model.config).flatMap((layer) => {
    const spec = specFor(layer.path);
    if (!spec) return [];
    checkQuantSpec(spec);
    const w = model.weights.get(`${layer.path}.weight`);
    if (!w) {
      throw new SlimtuneError("E_ARG", `model has no weight "${layer.path}.weight"; quantizeModel needs a LLaMA-family model loaded with LlamaModel.load`);
    }
    const [n, k] = w.shape;
    if (w.shape.length !== 2 || n === undefined || k === undefined || w.data.length !== n * k) {
      throw new SlimtuneError("E_SHAPE", `weight "${layer.path}.weight" has shape [${w.shape.join(", ")}] and ${w.data.length} values; expected a matrix [out, in]`);
    }
    resolveGroupSize(spec, k, layer.path);
    return [{ path: layer.path, spec, n, k, w }];
  });
  const linears = new Map<string, QuantizedLinear>();
  const owned = new Set<string>();
  layers.forEach(({ path, spec, n, k, w }, i) => {
    const q = quantizeLinear(w.data, n, k, spec, { layer: path, ...(stats ? { stats } : {}) });
    const bias = model.weights.get(`${path}.bias`);
    if (bias) q.bias = bias.data;
    linears.set(path, q);
    owned.add(`${path}.weight`).add(`${path}.bias`);
    onProgress?.(i + 1, layers.length, path);
  });
  const dense = new Map<string, HostParam>();
  for (const [name, param] of model.weights) if (!owned.has(name)) dense.set(name, param);
  const fallback = typeof plan === "function" ? null : plan;
  const spec = mostCommonSpec([...linears.values()].map((q) => q.spec)) ?? (fallback ? normalizeSpec(fallback) : null);
  if (!spec) throw new SlimtuneError("E_ARG", "the quantization plan leaves every linear layer in float; give at least one layer a spec");
  return { config: model.config, spec, linears, dense, sourceDir: model.sourceDir };
}
