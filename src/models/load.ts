// Opens any model slimtune understands: a float Hugging Face folder, a quantized one, or a GGUF file
// (dequantized to float, with its tokenizer rebuilt from the file).

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import { readLlamaGguf } from "../formats/gguf/llama.js";
import type { GgufFile } from "../formats/gguf/reader.js";
import { type QuantizedLoadOptions, isQuantizedFolder, loadQuantizedFolder } from "../formats/quantized/index.js";
import { isGgufFile } from "../formats/tokenizer.js";
import type { QuantizedModel } from "../quant/types.js";
import { assertFiniteBase } from "./finite.js";
import { LlamaModel } from "./llama/model.js";

/**
 * A model folder as loaded: float weights, or a quantized model. `ggufType` names the tensor type
 * of the GGUF file float weights were dequantized from (F32, F16, Q8_0, Q4_0), for messages.
 */
export type LoadedBase = { kind: "float"; model: LlamaModel; ggufType?: string } | { kind: "quantized"; model: QuantizedModel };

/**
 * Opens a model folder or GGUF file; weights with Inf or NaN are refused (models/finite.ts).
 * `headTables` applies to a quantized folder only (loadQuantizedFolder): its embedding/LM head come
 * as tables built from the file, never as float32.
 */
export function loadBase(dir: string, opts: QuantizedLoadOptions = {}): LoadedBase {
  const base = openBase(dir, opts);
  assertFiniteBase(base, dir);
  return base;
}

function openBase(dir: string, opts: QuantizedLoadOptions): LoadedBase {
  if (isGgufFile(dir)) {
    const { config, weights, gguf } = readLlamaGguf(dir);
    return { kind: "float", model: new LlamaModel(config, weights, dir), ggufType: ggufWeightType(gguf) };
  }
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", "model folder not found; pass a Hugging Face model folder with config.json and model.safetensors, or a .gguf file", dir);
  }
  return isQuantizedFolder(dir) ? { kind: "quantized", model: loadQuantizedFolder(dir, opts) } : { kind: "float", model: LlamaModel.load(dir) };
}

/** The type most of the blocks' weight matrices are stored in (norms and embeddings may differ). */
function ggufWeightType(gguf: GgufFile): string {
  const counts = new Map<string, number>();
  for (const t of gguf.tensors.values()) {
    if (t.name.startsWith("blk.") && t.ne.length === 2) counts.set(t.type.name, (counts.get(t.type.name) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
}
