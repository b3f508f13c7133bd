// Deployable weights without files: PEQA's tuned scales put into a quantized model, a copy of a
// float model's weights (to fold LoRA into), and a quantized model dequantized to float32. Used by
// deploy.ts (adapters from folders) and by the web page (adapters in memory).

import type { HostParam } from "../arch/params.js";
import type { TuningMethod } from "../methods/method.js";
import { LlamaModel } from "../models/llama/model.js";
import { dequantize } from "../quant/kinds/index.js";
import { scaleName } from "../quant/scales.js";
import { dequantizedTables } from "../quant/tables.js";
import type { QuantizedModel } from "../quant/types.js";

/** The quantized model with each layer's scales replaced by the PEQA method's tuned ones. */
export function withScales(qm: QuantizedModel, method: Pick<TuningMethod, "trainable">): QuantizedModel {
  const linears = new Map([...qm.linears].map(([path, q]) => {
    const tuned = method.trainable.get(scaleName(path));
    return [path, tuned ? { ...q, scales: Float32Array.from(tuned.data) } : q];
  }));
  return { ...qm, linears };
}

export function copyWeights(model: LlamaModel): LlamaModel {
  const weights = new Map<string, HostParam>([...model.weights].map(([k, w]) => [k, { data: Float32Array.from(w.data), shape: [...w.shape] }]));
  return new LlamaModel(model.config, weights, model.sourceDir);
}

/** Every quantized layer dequantized to float32 weights (and its bias), beside the float tensors. */
export function dequantizedModel(qm: QuantizedModel): LlamaModel {
  const weights = new Map<string, HostParam>();
  for (const [name, w] of qm.dense) weights.set(name, { data: Float32Array.from(w.data), shape: [...w.shape] });
  if (qm.tables) for (const [name, w] of dequantizedTables(qm.config, qm.tables)) weights.set(name, w);
  for (const [path, q] of qm.linears) {
    weights.set(`${path}.weight`, { data: dequantize(q), shape: [q.outFeatures, q.inFeatures] });
    if (q.bias) weights.set(`${path}.bias`, { data: Float32Array.from(q.bias), shape: [q.outFeatures] });
  }
  return new LlamaModel(qm.config, weights, qm.sourceDir);
}
