// In-memory form of a quantized linear layer and of a quantized model, shared by the quantizers,
// the folder formats and the graph parts. Every layer carries its own spec, so a model may mix bit
// widths, group sizes and kinds; `QuantizedModel.spec` is the default the folder formats write at
// top level (GPTQ's quantization_config), which layers override (GPTQModel's `dynamic`).

import type { LlamaConfig } from "../arch/llama/config.js";
import type { HostParam } from "../arch/params.js";

export type QuantBits = 2 | 3 | 4 | 8;
/** The quantized kinds slimtune knows; each has one module in quant/kinds/. */
export type QuantScheme = "rtn" | "nf4";

export interface QuantSpec {
  scheme: QuantScheme;
  bits: QuantBits;
  /** Input columns per (scale, zero) group; equal to the layer's K for per-output-channel. */
  groupSize: number | "channel";
  /** Symmetric RTN: zero fixed at 2^(b−1). NF4 is always symmetric (absmax). */
  symmetric: boolean;
}

/** Fields every grid-quantized layer has. Layouts are row-major, N = out, K = in, G = K / groupSize. */
interface GridLinear {
  spec: QuantSpec;
  outFeatures: number; // N
  inFeatures: number; // K
  groupSize: number; // resolved: K for per-channel
  /** Codes W̄, one byte each, [N, K]. */
  codes: Uint8Array;
  /** Scales s (RTN) or absmax (NF4), [N, G]. */
  scales: Float32Array;
  /** Bias [N] when the layer has one (kept in float). */
  bias: Float32Array | null;
}

/** W ≈ s ⊙ (W̄ − z): integer codes with a zero point per group. */
export interface RtnLinear extends GridLinear {
  kind: "rtn";
  /** Integer zero points z, [N, G]. */
  zeros: Uint8Array;
  /**
   * GPTQ act-order (desc_act): the group of each input column, g_idx [K], each group holding exactly
   * groupSize columns. Absent: column k is in group ⌊k / groupSize⌋.
   */
  groupIndex?: Int32Array;
}

/** W ≈ absmax ⊙ codebook[W̄]: QLoRA's 4-bit NormalFloat. */
export interface Nf4Linear extends GridLinear {
  kind: "nf4";
  zeros: null;
}

export type QuantizedLinear = RtnLinear | Nf4Linear;

export interface QuantizedModel {
  config: LlamaConfig;
  /** The default spec: what most layers use and what a folder's top-level config records. */
  spec: QuantSpec;
  /** Quantized linear layers by module path, e.g. "model.layers.0.self_attn.q_proj". */
  linears: Map<string, QuantizedLinear>;
  /** Everything kept in float (embeddings, norms, lm_head, unquantized linears), by tensor name. */
  dense: Map<string, HostParam>;
  /** Folder it came from (tokenizer files are copied from here). */
  sourceDir: string | null;
  /** How the codes were found (absent: RTN), recorded in the folder's quantization_config. */
  method?: { name: string; config?: Record<string, unknown> };
}

export function sameSpec(a: QuantSpec, b: QuantSpec): boolean {
  return a.scheme === b.scheme && a.bits === b.bits && a.groupSize === b.groupSize && a.symmetric === b.symmetric;
}

/** True when some layer's spec differs from the model's default. */
export function isMixed(qm: QuantizedModel): boolean {
  for (const q of qm.linears.values()) if (!sameSpec(q.spec, qm.spec)) return true;
  return false;
}

/** The spec most layers use (ties: the first in model order), for a model's default. */
export function mostCommonSpec(specs: Iterable<QuantSpec>): QuantSpec | null {
  const counts: Array<{ spec: QuantSpec; n: number }> = [];
  for (const s of specs) {
    const hit = counts.find((c) => sameSpec(c.spec, s));
    if (hit) hit.n++;
    else counts.push({ spec: s, n: 1 });
  }
  let best: { spec: QuantSpec; n: number } | null = null;
  for (const c of counts) if (!best || c.n > best.n) best = c;
  return best ? { ...best.spec } : null;
}
