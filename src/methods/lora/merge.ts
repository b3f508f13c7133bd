// Folding a LoRA adapter into dense weights, W ← W + scale·B·A, for exporting a plain model.

import { SlimtuneError } from "../../core/errors.js";
import { parseLoraKey } from "../../formats/peft.js";
import type { HostParam } from "../../arch/params.js";

export interface LoraDelta {
  /** α/r (or α/√r); `LoraMethod.scale`, or `loraScale(adapter.config)` for a loaded adapter. */
  scale: number;
  /** A [r, K] and B [N, r] under their PEFT keys: `LoraMethod.trainable` or `PeftAdapter.tensors`. */
  tensors: ReadonlyMap<string, HostParam>;
}

/**
 * Adds scale·B·A to each adapted `<path>.weight` in `weights`, in place. Every other weight is left
 * alone. Merge into a copy if the same weights still back a LoRA method that keeps training.
 */
export function mergeLora(weights: ReadonlyMap<string, HostParam>, delta: LoraDelta): void {
  for (const [key, a] of delta.tensors) {
    const parsed = parseLoraKey(key);
    if (!parsed) throw new SlimtuneError("E_ARG", `"${key}" is not a LoRA key (…lora_A.weight / …lora_B.weight)`);
    if (parsed.half !== "A") continue;
    const bKey = key.replace(/lora_A\.weight$/, "lora_B.weight");
    const b = delta.tensors.get(bKey);
    const wName = `${parsed.modulePath}.weight`;
    const w = weights.get(wName);
    if (!b) throw new SlimtuneError("E_ARG", `"${key}" has no partner "${bKey}"`);
    if (!w) throw new SlimtuneError("E_SHAPE", `"${key}" adapts "${wName}", which the model does not have; merge into the base model the adapter was trained on`);
    const [r, K] = a.shape as [number, number];
    const [N, rb] = b.shape as [number, number];
    if (rb !== r || w.shape[0] !== N || w.shape[1] !== K) {
      throw new SlimtuneError(
        "E_SHAPE",
        `cannot merge "${key}" [${a.shape.join(", ")}] and "${bKey}" [${b.shape.join(", ")}] into "${wName}" [${w.shape.join(", ")}]: expected A [r, K], B [N, r], W [N, K]`,
      );
    }
    addLowRank(w.data, a.data, b.data, delta.scale, N, K, r);
  }
}

// W[n, :] += scale · Σ_j B[n, j]·A[j, :], accumulated in float64 and rounded once per element.
function addLowRank(w: Float32Array, a: Float32Array, b: Float32Array, scale: number, N: number, K: number, r: number): void {
  const row = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    row.fill(0);
    for (let j = 0; j < r; j++) {
      const coef = b[n * r + j]!;
      if (coef === 0) continue;
      const off = j * K;
      for (let k = 0; k < K; k++) row[k]! += coef * a[off + k]!;
    }
    const off = n * K;
    for (let k = 0; k < K; k++) w[off + k]! += scale * row[k]!;
  }
}
