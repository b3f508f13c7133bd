// A model folder plus an optional adapter in the form a deployment runs: PEQA's tuned scales put
// into the quantized layers, a LoRA adapter folded into float weights (W + scale·B·A), a QLoRA
// adapter folded into the dequantized base, a FineGates run's gates applied and the gated-off
// heads and channels removed (as the run's own finalization wrote them). Exports write this;
// generation runs PEQA merged (the same integer kernels as the plain base) and LoRA as the adapter
// it is.

import type { HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import type { FineGatesMethod } from "../methods/finegates/index.js";
import { mergeLora } from "../methods/lora/merge.js";
import { loadAdapter, scoringFor } from "../methods/registry.js";
import type { TuningMethod } from "../methods/method.js";
import { baseScoring } from "../models/base-scoring.js";
import { describeBase } from "../models/describe.js";
import { LlamaModel } from "../models/llama/model.js";
import type { LoadedBase } from "../models/load.js";
import type { ScoringModel } from "../models/scoring.js";
import { dequantize } from "../quant/kinds/index.js";
import { scaleName } from "../quant/scales.js";
import { dequantizedTables } from "../quant/tables.js";
import type { QuantizedModel } from "../quant/types.js";

export interface Deployed {
  base: LoadedBase;
  /** What was merged, for messages: "the float model", "PEQA adapter merged into the RTN 4-bit model (…)", … */
  description: string;
  /** The method whose adapter was merged ("lora", "qlora", "peqa", "finegates"); absent without an adapter. */
  merged?: string;
}

/** The base with `adapterDir` (if any) merged in. */
export function deployedModel(base: LoadedBase, adapterDir?: string): Deployed {
  if (!adapterDir) return { base, description: describe(base) };
  const { definition, method } = loadAdapter(base, adapterDir);
  if (definition.name === "peqa" && base.kind === "quantized") {
    return { base: { kind: "quantized", model: withScales(base.model, method) }, description: `PEQA adapter merged into ${describe(base)}`, merged: "peqa" };
  }
  if (definition.name === "lora" || definition.name === "qlora") {
    const float = base.kind === "float" ? copyWeights(base.model) : dequantizedModel(base.model);
    mergeLora(float.weights, { scale: (method as TuningMethod & { scale: number }).scale, tensors: method.trainable });
    const note = base.kind === "quantized" ? " (the quantized base dequantized to float)" : "";
    return { base: { kind: "float", model: float }, description: `${definition.name} adapter merged into ${describe(base)}${note}`, merged: definition.name };
  }
  if (definition.name === "finegates") {
    // The run's own end of training: finalize hardens the gates when the run hardened them (its
    // saved μ are from before hardening), then the gated-off structure is removed, as its save did.
    const gates = method as FineGatesMethod;
    gates.finalize?.();
    const { model } = gates.prune();
    return { base: { kind: "float", model }, description: `FineGates run applied to ${describe(base)} (gated-off heads and channels removed)`, merged: "finegates" };
  }
  throw new SlimtuneError("E_ARG", `a ${definition.name} adapter cannot be merged for deployment; pass a LoRA, QLoRA or PEQA adapter folder, or a FineGates run`, adapterDir);
}

/** The model generation runs: the base at generation speed, PEQA merged, other adapters as adapters. */
export function generationScoring(base: LoadedBase, adapterDir?: string): ScoringModel & { description: string } {
  if (!adapterDir) return baseScoring(base, { generation: true });
  const { definition, method } = loadAdapter(base, adapterDir);
  if (definition.name === "peqa" && base.kind === "quantized") {
    const merged = baseScoring({ kind: "quantized", model: withScales(base.model, method) }, { generation: true });
    return { ...merged, description: `PEQA adapter on ${merged.description}` };
  }
  return scoringFor(base, adapterDir);
}

function describe(base: LoadedBase): string {
  return `the ${describeBase(base)}`;
}

/** The quantized model with each layer's scales replaced by the PEQA method's tuned ones. */
function withScales(qm: QuantizedModel, method: TuningMethod): QuantizedModel {
  const linears = new Map([...qm.linears].map(([path, q]) => {
    const tuned = method.trainable.get(scaleName(path));
    return [path, tuned ? { ...q, scales: Float32Array.from(tuned.data) } : q];
  }));
  return { ...qm, linears };
}

function copyWeights(model: LlamaModel): LlamaModel {
  const weights = new Map<string, HostParam>([...model.weights].map(([k, w]) => [k, { data: Float32Array.from(w.data), shape: [...w.shape] }]));
  return new LlamaModel(model.config, weights, model.sourceDir);
}

/** Every quantized layer dequantized to float32 weights (and its bias), beside the float tensors. */
export function dequantizedModel(qm: QuantizedModel): LlamaModel {
  const weights = new Map<string, HostParam>();
  for (const [name, w] of qm.dense) weights.set(name, { data: Float32Array.from(w.data), shape: [...w.shape] });
  if (qm.tables) for (const [name, w] of dequantizedTables(qm.config, qm.tables)) weights.set(name, w);
  for (const [path, q] of qm.linears) {
    weights.set(`${path}.weight`, { data: dequantize(q), shape: [q.outFeatures, q.inFeatures] });
    if (q.bias) weights.set(`${path}.bias`, { data: Float32Array.from(q.bias), shape: [q.outFeatures] });
  }
  return new LlamaModel(qm.config, weights, qm.sourceDir);
}
