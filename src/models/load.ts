// Opens any model folder slimtune understands: a float Hugging Face folder or a quantized one.

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import { isQuantizedFolder, loadQuantizedFolder } from "../formats/quantized/index.js";
import type { QuantizedModel } from "../quant/types.js";
import { LlamaModel } from "./llama/model.js";

/** A model folder as loaded: float weights, or a quantized model. */
export type LoadedBase = { kind: "float"; model: LlamaModel } | { kind: "quantized"; model: QuantizedModel };

export function loadBase(dir: string): LoadedBase {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", "model folder not found; pass a Hugging Face model folder with config.json and model.safetensors", dir);
  }
  return isQuantizedFolder(dir) ? { kind: "quantized", model: loadQuantizedFolder(dir) } : { kind: "float", model: LlamaModel.load(dir) };
}
