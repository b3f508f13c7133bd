// In-memory form of a quantized linear layer and a quantized model, shared by the quantizers,
// the file formats (GPTQ, our NF4 layout) and the engine's quantized layers.

import type { LlamaConfig } from "../formats/hf-config.js";
import type { HostParam } from "../models/llama/params.js";

export type QuantBits = 2 | 3 | 4 | 8;
export type QuantScheme = "rtn" | "nf4";

export interface QuantSpec {
  scheme: QuantScheme;
  bits: QuantBits;
  /** Input columns per (scale, zero) group; equal to the layer's K for per-output-channel. */
  groupSize: number | "channel";
  /** Symmetric RTN: zero fixed at 2^(b−1). NF4 is always symmetric (absmax). */
  symmetric: boolean;
}

/**
 * W ≈ s ⊙ (W̄ − z) for RTN; W ≈ s ⊙ codebook[W̄] for NF4. Layouts are row-major with
 * N = out features, K = in features, G = K / groupSize groups per row.
 */
export interface QuantizedLinear {
  spec: QuantSpec;
  outFeatures: number; // N
  inFeatures: number; // K
  groupSize: number; // resolved: K for per-channel
  /** Codes W̄, one byte each, [N, K]. */
  codes: Uint8Array;
  /** Scales s, [N, G]. */
  scales: Float32Array;
  /** Integer zero points z, [N, G] (RTN only; NF4 has none). */
  zeros: Uint8Array | null;
  /** Bias [N] when the layer has one (kept in float). */
  bias: Float32Array | null;
}

export interface QuantizedModel {
  config: LlamaConfig;
  spec: QuantSpec;
  /** Quantized linear layers by module path, e.g. "model.layers.0.self_attn.q_proj". */
  linears: Map<string, QuantizedLinear>;
  /** Everything kept in float (embeddings, norms, lm_head), by tensor name. */
  dense: Map<string, HostParam>;
  /** Folder it came from (tokenizer files are copied from here). */
  sourceDir: string | null;
}

/** The module paths slimtune quantizes in a LLaMA-family model: every linear layer of the blocks. */
export function quantizableLinears(config: LlamaConfig): string[] {
  const out: string[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    for (const m of ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]) {
      out.push(`model.layers.${i}.${m}`);
    }
  }
  return out;
}
