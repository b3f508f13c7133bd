// What a quantized model weighs as slimtune stores it: every layer counted at its own bits and in its
// own kind's layout, plus the float tensors. A mixed-precision model's total is the sum of its layers'.

import { layerStorage } from "./kinds/index.js";
import type { LayerSpec, QuantScheme, QuantizedModel } from "./types.js";
import { isMixed } from "./types.js";

export interface LayerSize {
  path: string;
  spec: LayerSpec;
  /** N·K weights of the layer. */
  weights: number;
  /** codes + scales + zeros + g_idx + codebook + permutation + low-rank factors + bias, as stored. */
  bytes: number;
  /** (codes + scales + zeros) bits per weight of this layer. */
  bitsPerWeight: number;
  /** Everything the layer stores but its bias, in bits per weight (ReALLM's budget counts this). */
  bitsPerWeightAll: number;
}

export interface SizeReport {
  /** The model's default spec (every layer's, unless `mixed`). */
  spec: LayerSpec;
  scheme: QuantScheme;
  /** The default spec's grid (null for ReALLM, whose layers each choose their own shape). */
  bits: number | null;
  groupSize: number | "channel" | null;
  symmetric: boolean | null;
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
  /** ReALLM's k-means codebooks. */
  codebookBytes: number;
  /** ReALLM's column permutations. */
  permutationBytes: number;
  /** ReALLM's low-rank factors L₁, L₂. */
  lowRankBytes: number;
  /** Biases of quantized layers as stored (F16 in GPTQ, F32 in slimtune-nf4). */
  biasBytes: number;
  /** Embeddings, norms, lm_head and float linears — stored F32. */
  denseBytes: number;
  /** Everything above: the tensor bytes of model.safetensors (the file adds only its JSON header). */
  totalBytes: number;
  /** (codes + scales + zeros) bits per quantized weight. */
  bitsPerWeight: number;
  /** Everything the quantized layers store but biases (g_idx, codebooks, permutations, low-rank factors too), per quantized weight. */
  bitsPerWeightAll: number;
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
  let codebookBytes = 0;
  let permutationBytes = 0;
  let lowRankBytes = 0;
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
    codebookBytes += s.codebookBytes;
    permutationBytes += s.permutationBytes;
    lowRankBytes += s.lowRankBytes;
    biasBytes += s.biasBytes;
    if (q.bias) floatValues += q.bias.length;
    const all = codes + s.scaleBytes + zeros + s.groupIndexBytes + s.codebookBytes + s.permutationBytes + s.lowRankBytes;
    layers.push({
      path,
      spec: { ...q.spec },
      weights,
      bytes: all + s.biasBytes,
      bitsPerWeight: weights ? ((codes + s.scaleBytes + zeros) * 8) / weights : 0,
      bitsPerWeightAll: weights ? (all * 8) / weights : 0,
    });
  }
  let denseBytes = 0;
  for (const p of qm.dense.values()) {
    floatValues += p.data.length;
    denseBytes += 4 * p.data.length;
  }
  const layerBytes = codeBytes + scaleBytes + zeroBytes + groupIndexBytes + codebookBytes + permutationBytes + lowRankBytes;
  const totalBytes = layerBytes + biasBytes + denseBytes;
  const params = quantizedWeights + floatValues;
  return {
    spec: { ...qm.spec },
    scheme: qm.spec.scheme,
    bits: qm.spec.scheme === "reallm" ? null : qm.spec.bits,
    groupSize: qm.spec.scheme === "reallm" ? null : qm.spec.groupSize,
    symmetric: qm.spec.scheme === "reallm" ? null : qm.spec.symmetric,
    mixed: isMixed(qm),
    quantizedWeights,
    floatValues,
    codeBytes,
    scaleBytes,
    zeroBytes,
    groupIndexBytes,
    codebookBytes,
    permutationBytes,
    lowRankBytes,
    biasBytes,
    denseBytes,
    totalBytes,
    bitsPerWeight: quantizedWeights ? ((codeBytes + scaleBytes + zeroBytes) * 8) / quantizedWeights : 0,
    bitsPerWeightAll: quantizedWeights ? (layerBytes * 8) / quantizedWeights : 0,
    bitsPerWeightModel: params ? (totalBytes * 8) / params : 0,
    floatBytes: 4 * params,
    layers,
  };
}
