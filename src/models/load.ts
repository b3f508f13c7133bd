// Opens any model folder slimtune understands: a float Hugging Face folder or a quantized one.

import { isQuantizedFolder, loadQuantizedFolder } from "../formats/gptq.js";
import type { LoadedBase } from "../methods/registry.js";
import { LlamaModel } from "./llama/model.js";
import { SlimtuneError } from "../errors.js";
import fs from "node:fs";

export function loadBase(dir: string): LoadedBase {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", "model folder not found; pass a Hugging Face model folder with config.json and model.safetensors", dir);
  }
  return isQuantizedFolder(dir) ? { kind: "quantized", model: loadQuantizedFolder(dir) } : { kind: "float", model: LlamaModel.load(dir) };
}
