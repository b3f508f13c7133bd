// Weights holding Inf or NaN are refused when a model is opened: before this, fine-tuning such a model
// skipped every step and still saved its untrained adapter, and eval printed "perplexity NaN" with
// exit 0. A model file in that state is corrupt or the output of a diverged run.

import type { HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import type { QuantizedLinear } from "../quant/types.js";

/** What assertFiniteBase reads of a loaded model (structural, so load.ts can call it without a cycle). */
export type FiniteCheckable =
  | { kind: "float"; model: { weights: ReadonlyMap<string, HostParam> } }
  | { kind: "quantized"; model: { dense: ReadonlyMap<string, HostParam>; linears: ReadonlyMap<string, QuantizedLinear> } };

/** Index of the first Inf/NaN in `x`, or -1. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) {
    // x - x is NaN exactly for Inf and NaN, and cheaper than Number.isFinite in a hot loop.
    const v = x[i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

function refuse(source: string, tensor: string, index: number, value: number): never {
  throw new SlimtuneError(
    source.endsWith(".gguf") ? "E_GGUF" : "E_SAFETENSORS",
    `tensor ${tensor} holds ${value} at index ${index}; the weights must be finite — the file is corrupt or was written by a diverged training run (re-create it, or resume the run from an earlier checkpoint with a lower --lr)`,
    source,
  );
}

/** Throws naming the first tensor with a non-finite value; float tensors of quantized layers too. */
export function assertFiniteBase(base: FiniteCheckable, source: string): void {
  const tensors = base.kind === "float" ? base.model.weights : base.model.dense;
  for (const [name, p] of tensors) {
    const i = firstNonFinite(p.data);
    if (i >= 0) refuse(source, name, i, p.data[i]!);
  }
  if (base.kind !== "quantized") return;
  for (const [path, layer] of base.model.linears) {
    for (const [field, value] of Object.entries(layer)) {
      if (!(value instanceof Float32Array)) continue;
      const i = firstNonFinite(value);
      if (i >= 0) refuse(source, `${path}.${field}`, i, value[i]!);
    }
  }
}
