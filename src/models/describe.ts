// A loaded model in words, for the first words of `eval` and `generate` output: what the file or
// folder is (float folder, GGUF file and its tensor type, or a quantized folder with its method,
// kind, bits, group size and symmetry), so a user can tell two results apart at a glance.

import type { LlamaConfig } from "../arch/llama/config.js";
import { type QuantizedModel, isGridLinear } from "../quant/types.js";
import type { LoadedBase } from "./load.js";

/** e.g. "float model with per-layer widths (pruned)", "Q4_0 GGUF file (dequantized to float)", "GPTQ 3-bit model (groups of 64, asymmetric)". */
export function describeBase(base: LoadedBase): string {
  if (base.kind === "quantized") return describeQuantized(base.model);
  const pruned = prunedNote(base.model.config);
  if (base.ggufType) return `${base.ggufType} GGUF file${pruned} (dequantized to float)`;
  return `float model${pruned}`;
}

const prunedNote = (config: LlamaConfig) => (config.layerShapes ? " with per-layer widths (pruned)" : "");

/** How the codes were found, as the folder records it (slimtune writes GPTQ's meta.method). */
const methodNames: Record<string, string> = { rtn: "RTN", gptq: "GPTQ", lqlora: "LQ-LoRA residual RTN", reallm: "ReALLM" };

export function describeQuantized(qm: QuantizedModel): string {
  const spec = qm.spec;
  if (spec.scheme === "reallm") {
    const budget = qm.method?.config?.budget_bits_per_weight;
    return `ReALLM model${prunedNote(qm.config)} (rank ${spec.rank} + vector-quantized residual, ${spec.codeBits}-bit codes over ${spec.vqDim}-d entries${typeof budget === "number" ? `, within ${budget} bits/weight` : ""})`;
  }
  const grid = [...qm.linears.values()].filter(isGridLinear);
  const bits = [...new Set(grid.map((q) => q.spec.bits))].sort((a, b) => a - b);
  const groups = [...new Set(grid.map((q) => q.spec.groupSize))];
  const width = bits.length > 1 ? `mixed-precision (${bits.join("/")}-bit by layer)` : `${spec.bits}-bit`;
  const group = (g: number | "channel") => (g === "channel" ? "per output channel" : `${spec.scheme === "nf4" ? "blocks" : "groups"} of ${g}`);
  const details = [groups.length > 1 ? `${spec.scheme === "nf4" ? "block" : "group"} sizes ${groups.join("/")} by layer` : group(spec.groupSize)];
  const pruned = prunedNote(qm.config);
  if (spec.scheme === "nf4") return `NF4 ${width} model${pruned} (${details.join(", ")})`;
  details.push(spec.symmetric ? "symmetric" : "asymmetric");
  if (grid.some((q) => q.kind === "rtn" && q.groupIndex)) details.push("act-order");
  const name = qm.method?.name;
  const method = name === undefined ? "RTN" : (methodNames[name] ?? name);
  return `${method} ${width} model${pruned} (${details.join(", ")})`;
}
