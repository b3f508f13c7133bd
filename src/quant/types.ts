// In-memory form of a quantized linear layer and of a quantized model, shared by the quantizers,
// the folder formats and the graph parts. Every layer carries its own spec, so a model may mix bit
// widths, group sizes and kinds; `QuantizedModel.spec` is the default the folder formats write at
// top level (GPTQ's quantization_config), which layers override (GPTQModel's `dynamic`).

import type { LlamaConfig } from "../arch/llama/config.js";
import type { HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";

export type QuantBits = 2 | 3 | 4 | 8;
/** Kinds on a grid of codes with a scale per group (QuantSpec). */
export type GridScheme = "rtn" | "nf4";
/** The quantized kinds slimtune knows; each has one module in quant/kinds/. */
export type QuantScheme = GridScheme | "reallm";

/** How a grid kind quantizes a layer (RTN, NF4); GPTQ finds codes on the same grid. */
export interface QuantSpec {
  scheme: GridScheme;
  bits: QuantBits;
  /** Input columns per (scale, zero) group; equal to the layer's K for per-output-channel. */
  groupSize: number | "channel";
  /** Symmetric RTN: zero fixed at 2^(b−1). NF4 is always symmetric (absmax). */
  symmetric: boolean;
}

/** Fields every grid-quantized layer has. Layouts are row-major, N = out, K = in, G = K / groupSize. */
interface GridFields {
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
export interface RtnLinear extends GridFields {
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
export interface Nf4Linear extends GridFields {
  kind: "nf4";
  zeros: null;
}

/**
 * ReALLM's per-matrix choice: W ≈ L₁L₂ + Q with L₁L₂ of rank `rank` and Q vector-quantized — rows cut
 * into blocks of `blockSize` columns scaled by their absmax (the scales themselves `scaleBits`-bit
 * codes of a per-row float16 maximum), each block's normalised values cut into `vqDim`-dimensional
 * sub-vectors replaced by the nearest of 2^codeBits centroids of a per-matrix k-means codebook.
 * Bits per weight of Q alone: codeBits / vqDim + scaleBits / blockSize + small terms.
 */
export interface ReallmSpec {
  scheme: "reallm";
  rank: number;
  /** d: values per codebook entry. */
  vqDim: number;
  /** log2 of the codebook size (b·d in the paper's terms: b bits per weight). */
  codeBits: number;
  /** Columns per absmax block (a multiple of vqDim, at most 256). */
  blockSize: number;
  /** Bits of each block's scale code. */
  scaleBits: number;
  /** Columns permuted within each block so that correlated columns share sub-vectors. */
  permuted: boolean;
  /** Storage of L₁ and L₂. */
  lowRankDtype: "float16" | "float32";
}

/** A layer's spec, whichever kind. */
export type LayerSpec = QuantSpec | ReallmSpec;

/** ReALLM: W ≈ L₁·L₂ + Q, with Q vector-quantized (see ReallmSpec). Layouts row-major. */
export interface ReallmLinear {
  kind: "reallm";
  spec: ReallmSpec;
  outFeatures: number; // N
  inFeatures: number; // K
  /** L₁ [N, r]. */
  l1: Float32Array;
  /** L₂ [r, K]. */
  l2: Float32Array;
  /** Codebook index of each sub-vector, [N, K / d] in (permuted) column order. */
  vqCodes: Uint8Array;
  /** Centroids [2^codeBits, d] (float16 values). */
  codebook: Float32Array;
  /** Block scale codes [N, K / blockSize]: scale = code / (2^scaleBits − 1) · rowScale. */
  scaleCodes: Uint8Array;
  /** Per-row maximum block scale [N] (float16 values). */
  rowScales: Float32Array;
  /** perm[p] = the input column at position p (each block maps onto itself); null: identity. */
  perm: Int32Array | null;
  bias: Float32Array | null;
}

export type QuantizedLinear = RtnLinear | Nf4Linear | ReallmLinear;
/** The layers that carry a grid of codes with scales (PEQA, GPTQ checkpoints, MatMulNBits). */
export type GridLinear = RtnLinear | Nf4Linear;

export function isGridLinear(q: QuantizedLinear): q is GridLinear {
  return q.kind === "rtn" || q.kind === "nf4";
}

/**
 * The model's default spec when it is a grid one (RTN, NF4), for code that works on scales and
 * codes (PEQA, GPTQ and NF4 folders); E_ARG naming `what` otherwise.
 */
export function gridSpecOf(qm: QuantizedModel, what: string): QuantSpec {
  const spec = qm.spec;
  if (spec.scheme === "reallm") {
    throw new SlimtuneError("E_ARG", `${what} works on RTN or NF4 layers (codes with scales); this is a ReALLM model (low-rank + vector-quantized) — tune it with --method reallm`);
  }
  return spec;
}

/** Layer `path` of `qm` as a grid layer; E_ARG naming `what` when it is of another kind. */
export function gridLayer(q: QuantizedLinear, path: string, what: string): GridLinear {
  if (!isGridLinear(q)) throw new SlimtuneError("E_ARG", `${what} works on RTN or NF4 layers; ${path} is a ${q.kind} layer`);
  return q;
}

/**
 * Token embedding and LM head as quantized tables (RTN, symmetric; quant/tables.ts); a tied model has
 * the same layer as both. Their float tensors stay in `dense` for host-side code.
 */
export interface QuantizedTables {
  embedding?: RtnLinear;
  lmHead?: RtnLinear;
}

export interface QuantizedModel {
  config: LlamaConfig;
  /** The default spec: what most layers use and what a folder's top-level config records. */
  spec: LayerSpec;
  /** Quantized linear layers by module path, e.g. "model.layers.0.self_attn.q_proj". */
  linears: Map<string, QuantizedLinear>;
  /** Everything kept in float (embeddings, norms, lm_head, unquantized linears), by tensor name. */
  dense: Map<string, HostParam>;
  /** Folder it came from (tokenizer files are copied from here). */
  sourceDir: string | null;
  /** Embedding and LM head quantized too (absent: float, in `dense`). */
  tables?: QuantizedTables;
  /** How the codes were found (absent: RTN), recorded in the folder's quantization_config. */
  method?: { name: string; config?: Record<string, unknown> };
}

export function sameSpec(a: LayerSpec, b: LayerSpec): boolean {
  if (a.scheme === "reallm" || b.scheme === "reallm") return JSON.stringify(a) === JSON.stringify(b);
  return a.scheme === b.scheme && a.bits === b.bits && a.groupSize === b.groupSize && a.symmetric === b.symmetric;
}

/** True when some layer's spec differs from the model's default. */
export function isMixed(qm: QuantizedModel): boolean {
  for (const q of qm.linears.values()) if (!sameSpec(q.spec, qm.spec)) return true;
  return false;
}

/** The spec most layers use (ties: the first in model order), for a model's default. */
export function mostCommonSpec<S extends LayerSpec>(specs: Iterable<S>): S | null {
  const counts: Array<{ spec: S; n: number }> = [];
  for (const s of specs) {
    const hit = counts.find((c) => sameSpec(c.spec, s));
    if (hit) hit.n++;
    else counts.push({ spec: s, n: 1 });
  }
  let best: { spec: S; n: number } | null = null;
  for (const c of counts) if (!best || c.n > best.n) best = c;
  return best ? { ...best.spec } : null;
}
