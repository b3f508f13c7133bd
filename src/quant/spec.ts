// Validation of a QuantSpec, alone and against a layer's input width K, with errors that say how to fix it.

import { SlimtuneError } from "../core/errors.js";
import type { QuantBits, QuantSpec } from "./types.js";

export const quantBitWidths: readonly QuantBits[] = [2, 3, 4, 8];

/**
 * Group sizes slimtune writes: GPTQModel's torch kernel accepts exactly these (plus −1 = channel);
 * vLLM's Marlin path only 32, 64 and 128, so those are the ones error messages suggest.
 */
export const quantGroupSizes: readonly number[] = [16, 32, 64, 128, 256, 512, 1024];
const suggestedGroupSizes = [32, 64, 128];

export function isQuantBits(value: unknown): value is QuantBits {
  return typeof value === "number" && (quantBitWidths as readonly number[]).includes(value);
}

function orList(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}

/** Throws E_ARG unless `spec` is usable on some layer (scheme, bits, group size); K is checked by resolveGroupSize. */
export function checkQuantSpec(spec: QuantSpec): void {
  if (spec.scheme !== "rtn" && spec.scheme !== "nf4") {
    throw new SlimtuneError("E_ARG", `quantization scheme "${String(spec.scheme)}" is unknown; use "rtn" (GPTQ-compatible integers) or "nf4" (QLoRA's 4-bit normal float)`);
  }
  if (!isQuantBits(spec.bits)) {
    throw new SlimtuneError("E_ARG", `bits ${String(spec.bits)} is not supported; expected 2, 3, 4 or 8 (what GPTQ loaders accept) — pick one of those`);
  }
  if (spec.scheme === "nf4" && spec.bits !== 4) {
    throw new SlimtuneError("E_ARG", `bits ${spec.bits} with scheme nf4: NF4 is a 4-bit code book — use bits 4 with nf4, or scheme rtn for ${spec.bits} bits`);
  }
  const g = spec.groupSize;
  if (g !== "channel" && !quantGroupSizes.includes(g)) {
    throw new SlimtuneError(
      "E_ARG",
      `group size ${String(g)} is not supported; expected ${quantGroupSizes.join(", ")} or "channel" (one group per output row) — ${orList([...suggestedGroupSizes.map(String), "channel"])} load everywhere`,
    );
  }
}

/** Input columns per group for a layer with `k` inputs; E_ARG naming the layer when the group size does not divide K. */
export function resolveGroupSize(spec: QuantSpec, k: number, layer = "the layer"): number {
  if (spec.groupSize === "channel") return k;
  const g = spec.groupSize;
  if (k % g !== 0) {
    const fits = suggestedGroupSizes.filter((d) => k % d === 0).map(String);
    throw new SlimtuneError(
      "E_ARG",
      `group size ${g} does not divide the ${k} input columns (K) of ${layer}; every group must lie inside one row — use ${orList([...fits, "channel"])}`,
    );
  }
  return g;
}

/** The spec as stored: NF4 is always symmetric (absmax), whatever `symmetric` said. */
export function normalizeSpec(spec: QuantSpec): QuantSpec {
  return spec.scheme === "nf4" ? { scheme: "nf4", bits: 4, groupSize: spec.groupSize, symmetric: true } : { ...spec };
}
