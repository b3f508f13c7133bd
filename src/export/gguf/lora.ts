// A PEFT LoRA adapter as a GGUF LoRA adapter llama.cpp applies to the base model's GGUF at load
// time (formats.md §3.9): general.type "adapter", adapter.lora.alpha, and per adapted tensor
// `<base tensor>.lora_a` (A [r, K] as is, ne [K, r]) and `.lora_b` (B [N, r], ne [r, N]) with
// q/k rows of B permuted like the base. llama.cpp scales by alpha / r; rsLoRA's α/√r is written as
// alpha α·√r.

import { SlimtuneError } from "../../core/errors.js";
import { GGML_TYPES, encodeRows } from "../../formats/gguf/ggml-types.js";
import { ggufTensorName, permuteQK, qkHeads, uniformGgufArch } from "../../formats/gguf/llama.js";
import { type GgufTensor, type GgufValue, writeGguf } from "../../formats/gguf/writer.js";
import { loadPeftAdapter, parseLoraKey } from "../../formats/peft.js";
import { layerShape } from "../../arch/llama/config.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import type { LoadedBase } from "../../models/load.js";

export interface GgufLoraReport {
  tensors: number;
  alpha: number;
  rank: number;
}

export function exportGgufLora(base: LoadedBase, adapterDir: string, outFile: string, opts: { dtype: "f32" | "f16" }): GgufLoraReport {
  const config = base.model.config;
  const adapter = loadPeftAdapter(adapterDir);
  const { r, loraAlpha, useRslora } = adapter.config;
  const layers = new Map(linearLayers(config).map((l) => [l.path, l]));
  const uniform = Array.from({ length: config.numLayers }, (_, i) => layerShape(config, i)).every((w, _, all) => w.numHeads === all[0]!.numHeads && w.numKvHeads === all[0]!.numKvHeads && w.intermediateSize === all[0]!.intermediateSize);
  const type = opts.dtype === "f16" ? GGML_TYPES.F16 : GGML_TYPES.F32;
  const tensors: GgufTensor[] = [];
  for (const [key, a] of adapter.tensors) {
    const parsed = parseLoraKey(key);
    if (!parsed) throw new SlimtuneError("E_CONFIG", `tensor "${key}" is not a LoRA A/B weight; llama.cpp's adapters hold lora_A and lora_B only`, adapterDir);
    if (parsed.half !== "A") continue;
    const b = adapter.tensors.get(key.replace(/lora_A\.weight$/, "lora_B.weight"));
    const layer = layers.get(parsed.modulePath);
    if (!b || !layer) {
      throw new SlimtuneError("E_SHAPE", `"${key}" adapts "${parsed.modulePath}", which the base model has no such layer for (or its lora_B is missing); export the adapter with the base it was trained on`, adapterDir);
    }
    const [rank, K] = a.shape as [number, number];
    const [N] = b.shape as [number, number];
    if (K !== layer.inFeatures || N !== layer.outFeatures) {
      throw new SlimtuneError("E_SHAPE", `"${key}" is [${a.shape.join(", ")}] with lora_B [${b.shape.join(", ")}], but "${parsed.modulePath}" is [${layer.outFeatures}, ${layer.inFeatures}]; export the adapter with the base it was trained on`, adapterDir);
    }
    const baseName = ggufTensorName(`${parsed.modulePath}.weight`);
    const heads = qkHeads(config, `${parsed.modulePath}.weight`);
    const bRows = heads > 0 ? permuteQK(b.data, heads, config.headDim, "gguf") : b.data;
    tensors.push({ name: `${baseName}.lora_a`, ne: [K, rank], type, data: encodeRows(type, a.data) });
    tensors.push({ name: `${baseName}.lora_b`, ne: [rank, N], type, data: encodeRows(type, bRows) });
  }
  const alpha = useRslora ? loraAlpha * Math.sqrt(r) : loraAlpha;
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: uniform ? uniformGgufArch(config) : "deci" }],
    ["general.type", { type: "string", value: "adapter" }],
    ["general.file_type", { type: "u32", value: opts.dtype === "f16" ? 1 : 0 }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["adapter.lora.alpha", { type: "f32", value: alpha }],
  ];
  writeGguf(outFile, metadata, tensors);
  return { tensors: tensors.length, alpha, rank: r };
}
