// Quantizes every linear layer of a LLaMA-family model's blocks, and reports what the result weighs.

import { SlimtuneError } from "../errors.js";
import type { LlamaModel } from "../models/llama/model.js";
import type { HostParam } from "../models/llama/params.js";
import { quantizeNf4 } from "./nf4.js";
import { type RtnStats, quantizeRtn } from "./rtn.js";
import { checkQuantSpec, normalizeSpec, resolveGroupSize } from "./spec.js";
import { type QuantSpec, type QuantizedLinear, type QuantizedModel, quantizableLinears } from "./types.js";

export type QuantizeProgress = (done: number, total: number, layer: string) => void;

/** Quantizes one weight W [n, k] with the spec's scheme. */
export function quantizeLinear(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: { layer?: string; stats?: RtnStats } = {}): QuantizedLinear {
  return spec.scheme === "nf4" ? quantizeNf4(w, n, k, spec, opts) : quantizeRtn(w, n, k, spec, opts);
}

/**
 * Quantizes every q/k/v/o/gate/up/down projection of `model`; everything else (embeddings, norms,
 * lm_head) goes to `dense`, sharing the model's arrays (not copied). The spec and every layer's K
 * are checked before any work, so a bad group size fails at once and names the layer.
 */
export function quantizeModel(
  model: Pick<LlamaModel, "config" | "weights" | "sourceDir">,
  spec: QuantSpec,
  onProgress?: QuantizeProgress,
  stats?: RtnStats,
): QuantizedModel {
  checkQuantSpec(spec);
  const paths = quantizableLinears(model.config);
  const shapes = paths.map((p) => {
    const w = model.weights.get(`${p}.weight`);
    if (!w) {
      throw new SlimtuneError("E_ARG", `model has no weight "${p}.weight"; quantizeModel needs a LLaMA-family model loaded with LlamaModel.load`);
    }
    const [n, k] = w.shape;
    if (w.shape.length !== 2 || n === undefined || k === undefined || w.data.length !== n * k) {
      throw new SlimtuneError("E_SHAPE", `weight "${p}.weight" has shape [${w.shape.join(", ")}] and ${w.data.length} values; expected a matrix [out, in]`);
    }
    resolveGroupSize(spec, k, p);
    return { n, k, w };
  });
  const linears = new Map<string, QuantizedLinear>();
  const owned = new Set<string>();
  paths.forEach((p, i) => {
    const { n, k, w } = shapes[i]!;
    const q = quantizeLinear(w.data, n, k, spec, { layer: p, ...(stats ? { stats } : {}) });
    const bias = model.weights.get(`${p}.bias`);
    if (bias) q.bias = bias.data;
    linears.set(p, q);
    owned.add(`${p}.weight`).add(`${p}.bias`);
    onProgress?.(i + 1, paths.length, p);
  });
  const dense = new Map<string, HostParam>();
  for (const [name, param] of model.weights) if (!owned.has(name)) dense.set(name, param);
  return { config: model.config, spec: normalizeSpec(spec), linears, dense, sourceDir: model.sourceDir };
}

export interface SizeReport {
  scheme: QuantSpec["scheme"];
  bits: number;
  groupSize: number | "channel";
  symmetric: boolean;
  /** Weights inside the quantized linear layers (Σ N·K). */
  quantizedWeights: number;
  /** Float values kept as they are (dense tensors plus biases). */
  floatValues: number;
  /** Codes at exactly `bits` bits each. */
  codeBytes: number;
  /** Scales as stored: F16 in GPTQ, F32 absmax in slimtune-nf4. */
  scaleBytes: number;
  /** Zero points at `bits` bits each (GPTQ qzeros); 0 for NF4. */
  zeroBytes: number;
  /** GPTQ's g_idx, int32 per input row of every layer; 0 for NF4. */
  groupIndexBytes: number;
  /** Biases of quantized layers as stored (F16 in GPTQ, F32 in slimtune-nf4). */
  biasBytes: number;
  /** Embeddings, norms, lm_head — stored F32. */
  denseBytes: number;
  /** Everything above: the tensor bytes of model.safetensors (the file adds only its JSON header). */
  totalBytes: number;
  /** (codes + scales + zeros) bits per quantized weight. */
  bitsPerWeight: number;
  /** totalBytes · 8 over every parameter of the model. */
  bitsPerWeightModel: number;
  /** The same model with every parameter in F32. */
  floatBytes: number;
}

/** Storage of a quantized model in the format slimtune writes for its scheme (GPTQ for rtn, slimtune-nf4 for nf4). */
export function sizeReport(qm: QuantizedModel): SizeReport {
  const nf4 = qm.spec.scheme === "nf4";
  let quantizedWeights = 0;
  let floatValues = 0;
  let codeBits = 0;
  let scaleBytes = 0;
  let zeroBits = 0;
  let groupIndexBytes = 0;
  let biasBytes = 0;
  for (const q of qm.linears.values()) {
    const bits = q.spec.bits;
    const cells = q.outFeatures * q.inFeatures;
    const groups = q.outFeatures * (q.inFeatures / q.groupSize);
    quantizedWeights += cells;
    codeBits += cells * bits;
    scaleBytes += groups * (nf4 ? 4 : 2);
    if (!nf4) {
      zeroBits += groups * bits;
      groupIndexBytes += 4 * q.inFeatures;
    }
    if (q.bias) {
      floatValues += q.bias.length;
      biasBytes += q.bias.length * (nf4 ? 4 : 2);
    }
  }
  let denseBytes = 0;
  for (const p of qm.dense.values()) {
    floatValues += p.data.length;
    denseBytes += 4 * p.data.length;
  }
  const codeBytes = Math.ceil(codeBits / 8);
  const zeroBytes = Math.ceil(zeroBits / 8);
  const totalBytes = codeBytes + scaleBytes + zeroBytes + groupIndexBytes + biasBytes + denseBytes;
  const params = quantizedWeights + floatValues;
  return {
    scheme: qm.spec.scheme,
    bits: qm.spec.bits,
    groupSize: qm.spec.groupSize,
    symmetric: qm.spec.symmetric,
    quantizedWeights,
    floatValues,
    codeBytes,
    scaleBytes,
    zeroBytes,
    groupIndexBytes,
    biasBytes,
    denseBytes,
    totalBytes,
    bitsPerWeight: quantizedWeights ? ((codeBytes + scaleBytes + zeroBytes) * 8) / quantizedWeights : 0,
    bitsPerWeightModel: params ? (totalBytes * 8) / params : 0,
    floatBytes: 4 * params,
  };
}
