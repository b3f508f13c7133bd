// What a quantized model weighs as slimtune stores it: every layer counted at its own bits and in its
// own kind's layout, plus the float tensors. A mixed-precision model's total is the sum of its layers'.

import { layerStorage } from "./kinds/index.js";
import type { QuantSpec, QuantizedModel } from "./types.js";
import { isMixed } from "./types.js";

export interface LayerSize {
  path: string;
  spec: QuantSpec;
  /** N·K weights of the layer. */
  weights: number;
  /** codes + scales + zeros + g_idx + bias, as stored. */
  bytes: number;
  /** (codes + scales + zeros) bits per weight of this layer. */
  bitsPerWeight: number;
}

export interface SizeReport {
  /** The model's default spec (every layer's, unless `mixed`). */
  scheme: QuantSpec["scheme"];
  bits: number;
  groupSize: number | "channel";
  symmetric: boolean;
  /** Some layer overrides the default spec. */
  mixed: boolean;
  /** Weights inside the quantized linear layers (Σ N·K). */
  quantizedWeights: number;
  /** Float values kept as they are (dense tensors plus biases). */
  floatValues: number;
  /** Codes, each layer at its own bits. */
  codeBytes: number;
  /** Scales as stored: F16 in GPTQ, F32 absmax in slimtune-nf4. */
  scaleBytes: number;
  /** Zero points at their layer's bits (GPTQ qzeros); 0 for NF4. */
  zeroBytes: number;
  /** GPTQ's g_idx, int32 per input row of every layer; 0 for NF4. */
  groupIndexBytes: number;
  /** Biases of quantized layers as stored (F16 in GPTQ, F32 in slimtune-nf4). */
  biasBytes: number;
  /** Embeddings, norms, lm_head and float linears — stored F32. */
  denseBytes: number;
  /** Everything above: the tensor bytes of model.safetensors (the file adds only its JSON header). */
  totalBytes: number;
  /** (codes + scales + zeros) bits per quantized weight. */
  bitsPerWeight: number;
  /** totalBytes · 8 over every parameter of the model. */
  bitsPerWeightModel: number;
  /** The same model with every parameter in F32. */
  floatBytes: number;
  /** Each quantized layer, in model order; Σ bytes + denseBytes = totalBytes. */
  layers: LayerSize[];
}

const bytesOf = (bits: number) => Math.ceil(bits / 8);

export function sizeReport(qm: QuantizedModel): SizeReport {
  let quantizedWeights = 0;
  let floatValues = 0;
  let codeBytes = 0;
  let scaleBytes = 0;
  let zeroBytes = 0;
  let groupIndexBytes = 0;
  let biasBytes = 0;
  const layers: LayerSize[] = [];
  for (const [path, q] of qm.linears) {
    const s = layerStorage(q);
    const weights = q.outFeatures * q.inFeatures;
    const codes = bytesOf(s.codeBits);
    const zeros = bytesOf(s.zeroBits);
    quantizedWeights += weights;
    codeBytes += codes;
    scaleBytes += s.scaleBytes;
    zeroBytes += zeros;
    groupIndexBytes += s.groupIndexBytes;
    biasBytes += s.biasBytes;
    if (q.bias) floatValues += q.bias.length;
    layers.push({
      path,
      spec: { ...q.spec },
      weights,
      bytes: codes + s.scaleBytes + zeros + s.groupIndexBytes + s.biasBytes,
      bitsPerWeight: weights ? ((codes + s.scaleBytes + zeros) * 8) / weights : 0,
    });
  }
  let denseBytes = 0;
  for (const p of qm.dense.values()) {
    floatValues += p.data.length;
    denseBytes += 4 * p.data.length;
  }
  const totalBytes = codeBytes + scaleBytes + zeroBytes + groupIndexBytes + biasBytes + denseBytes;
  const params = quantizedWeights + floatValues;
  return {
    scheme: qm.spec.scheme,
    bits: qm.spec.bits,
    groupSize: qm.spec.groupSize,
    symmetric: qm.spec.symmetric,
    mixed: isMixed(qm),
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
    layers,
  };
}
