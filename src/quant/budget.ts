// Memory accounting for mixed precision: what a model weighs for any assignment of bit widths to its
// decoder layers, without quantizing it. Every stored byte is counted exactly as sizeReport counts a
// quantized model (codes at their bits, F16 scales, zeros at their bits, g_idx, F16 biases, and the
// float embeddings, norms and head at F32), so a budget met here is met by the folder written.
//
// The unit of allocation is a decoder layer (QPruner's layer-wise precision): its seven projections
// share one bit width.

import { type LinearLayer, linearLayers } from "../arch/llama/shapes.js";
import type { FloatWeights } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { layerStorage } from "./kinds/index.js";
import { checkQuantSpec, isQuantBits, quantBitWidths, resolveGroupSize } from "./spec.js";
import type { QuantBits, QuantSpec, QuantizedLinear } from "./types.js";
import { isGpt2 } from "../arch/llama/config.js";
import { gpt2LayerPrefix } from "../arch/gpt2/names.js";

/** A set of linear layers that share one bit width. */
export interface BitsUnit {
  /** e.g. "model.layers.3". */
  name: string;
  layers: LinearLayer[];
}

/** The spec every layer gets, but for its bits. */
export type BaseSpec = Omit<QuantSpec, "bits">;

export interface BudgetModel {
  units: BitsUnit[];
  /** The bit widths an allocation may use, ascending. */
  choices: QuantBits[];
  /** bytes[u][c]: what unit u stores at choices[c]. */
  bytes: number[][];
  /** Weights (Σ N·K) of each unit. */
  weights: number[];
  /** Float tensors stored at F32 whatever the allocation (embeddings, norms, head). */
  fixedBytes: number;
  /** The whole model in F32. */
  floatBytes: number;
  base: BaseSpec;
}

/** Bits per unit, one entry per unit. */
export type Allocation = QuantBits[];

/** One unit per decoder layer that has linear layers left. */
export function layerUnits(model: FloatWeights): BitsUnit[] {
  const byLayer = new Map<number, LinearLayer[]>();
  for (const l of linearLayers(model.config)) byLayer.set(l.layer, [...(byLayer.get(l.layer) ?? []), l]);
  return [...byLayer].map(([i, layers]) => ({ name: isGpt2(model.config) ? gpt2LayerPrefix(i) : `model.layers.${i}`, layers }));
}

/** Bytes one linear layer stores at `spec`, counted by its kind's storage rule (no quantization needed). */
export function linearBytesAt(layer: LinearLayer, spec: QuantSpec): number {
  const groupSize = resolveGroupSize(spec, layer.inFeatures, layer.path);
  // The storage rules read only shapes, the spec and whether there is a bias.
  const shapeOnly = {
    kind: spec.scheme,
    spec,
    outFeatures: layer.outFeatures,
    inFeatures: layer.inFeatures,
    groupSize,
    bias: layer.bias ? new Float32Array(layer.outFeatures) : null,
  } as unknown as QuantizedLinear;
  const s = layerStorage(shapeOnly);
  return Math.ceil(s.codeBits / 8) + s.scaleBytes + Math.ceil(s.zeroBits / 8) + s.groupIndexBytes + s.biasBytes;
}

export function parseBitChoices(values: readonly number[]): QuantBits[] {
  if (values.length === 0) throw new SlimtuneError("E_ARG", `--bit-widths is empty; list some of ${quantBitWidths.join(", ")}`);
  for (const b of values) {
    if (!isQuantBits(b)) throw new SlimtuneError("E_ARG", `--bit-widths has ${b}; every width must be one of ${quantBitWidths.join(", ")} (what GPTQ loaders accept)`);
  }
  return [...new Set(values as QuantBits[])].sort((a, b) => a - b);
}

export function budgetModel(model: FloatWeights, base: BaseSpec, choices: readonly QuantBits[] = quantBitWidths): BudgetModel {
  const units = layerUnits(model);
  const sorted = parseBitChoices(choices);
  for (const b of sorted) checkQuantSpec({ ...base, bits: b });
  const quantized = new Set<string>();
  for (const u of units) for (const l of u.layers) quantized.add(`${l.path}.weight`).add(`${l.path}.bias`);
  let fixed = 0;
  let all = 0;
  for (const [name, p] of model.weights) {
    all += p.data.length;
    if (!quantized.has(name)) fixed += 4 * p.data.length;
  }
  return {
    units,
    choices: sorted,
    bytes: units.map((u) => sorted.map((bits) => u.layers.reduce((s, l) => s + linearBytesAt(l, { ...base, bits }), 0))),
    weights: units.map((u) => u.layers.reduce((s, l) => s + l.outFeatures * l.inFeatures, 0)),
    fixedBytes: fixed,
    floatBytes: 4 * all,
    base,
  };
}

const choiceIndex = (bm: BudgetModel, bits: QuantBits, unit: number): number => {
  const c = bm.choices.indexOf(bits);
  if (c < 0) throw new SlimtuneError("E_ARG", `unit ${bm.units[unit]!.name} has ${bits} bits, not one of the allowed ${bm.choices.join(", ")}`);
  return c;
};

/** Total stored bytes of the model under `alloc`. */
export function allocationBytes(bm: BudgetModel, alloc: Allocation): number {
  return alloc.reduce((s, bits, u) => s + bm.bytes[u]![choiceIndex(bm, bits, u)]!, bm.fixedBytes);
}

/** Mean code bits per quantized weight under `alloc` (Σ b·n / Σ n). */
export function allocationAvgBits(bm: BudgetModel, alloc: Allocation): number {
  let num = 0;
  let den = 0;
  alloc.forEach((b, u) => {
    num += b * bm.weights[u]!;
    den += bm.weights[u]!;
  });
  return den > 0 ? num / den : 0;
}

/** A hard constraint on an allocation: total bytes, or mean bits per quantized weight. */
export type Budget = { kind: "bytes"; limit: number } | { kind: "avg-bits"; limit: number };

export const budgetCost = (bm: BudgetModel, budget: Budget, alloc: Allocation): number =>
  budget.kind === "bytes" ? allocationBytes(bm, alloc) : allocationAvgBits(bm, alloc);

export const fitsBudget = (bm: BudgetModel, budget: Budget, alloc: Allocation): boolean => budgetCost(bm, budget, alloc) <= budget.limit * (1 + 1e-12);

export const uniformAllocation = (bm: BudgetModel, bits: QuantBits): Allocation => bm.units.map(() => bits);

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(3)} MB`;

/** Throws E_ARG naming the feasible range when no allocation meets `budget`, or when it exceeds the float model. */
export function checkBudget(bm: BudgetModel, budget: Budget): void {
  const lo = bm.choices[0]!;
  const hi = bm.choices[bm.choices.length - 1]!;
  if (budget.kind === "bytes") {
    const min = allocationBytes(bm, uniformAllocation(bm, lo));
    if (!(budget.limit >= min)) {
      throw new SlimtuneError("E_ARG", `--budget-mb ${budget.limit / 1e6} is below the smallest allocation: every layer at ${lo} bits stores ${mb(min)} (the float embeddings, norms and head alone are ${mb(bm.fixedBytes)}); pass at least ${(Math.ceil(min / 1e3) / 1e3).toFixed(3)}`);
    }
    if (budget.limit > bm.floatBytes) {
      throw new SlimtuneError("E_ARG", `--budget-mb ${budget.limit / 1e6} is above the float model itself (${mb(bm.floatBytes)}); there is nothing to allocate — pass a smaller budget (every layer at ${hi} bits is ${mb(allocationBytes(bm, uniformAllocation(bm, hi)))})`);
    }
    return;
  }
  if (!(budget.limit >= lo && budget.limit <= hi)) {
    throw new SlimtuneError("E_ARG", `--avg-bits ${budget.limit} must lie between the narrowest and widest allowed widths, ${lo} and ${hi}`);
  }
}

/** The spec of every linear layer under `alloc`, as quantizeModel's plan. */
export function allocationPlan(bm: BudgetModel, alloc: Allocation): (path: string) => QuantSpec {
  const bitsOf = new Map<string, QuantBits>();
  bm.units.forEach((u, i) => {
    for (const l of u.layers) bitsOf.set(l.path, alloc[i]!);
  });
  return (path) => {
    const bits = bitsOf.get(path);
    if (bits === undefined) throw new SlimtuneError("E_ARG", `"${path}" is in no allocation unit`);
    return { ...bm.base, bits };
  };
}
