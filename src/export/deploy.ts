// A model folder plus an optional adapter in the form a deployment runs: PEQA's tuned scales put
// into the quantized layers, a LoRA adapter folded into float weights (W + scale·B·A), a QLoRA
// adapter folded into the dequantized base, a FineGates run's gates applied and the gated-off
// heads and channels removed (as the run's own finalization wrote them). Exports write this;
// generation runs PEQA merged (the same integer kernels as the plain base) and LoRA as the adapter
// it is.

import { SlimtuneError } from "../core/errors.js";
import type { FineGatesMethod } from "../methods/finegates/index.js";
import { mergeLora } from "../methods/lora/merge.js";
import { loadAdapter, scoringFor } from "../methods/registry.js";
import type { TuningMethod } from "../methods/method.js";
import { baseScoring } from "../models/base-scoring.js";
import { describeBase } from "../models/describe.js";
import type { LoadedBase } from "../models/load.js";
import type { ScoringModel } from "../models/scoring.js";
import { copyWeights, dequantizedModel, withScales } from "./merged.js";

export { dequantizedModel };

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
