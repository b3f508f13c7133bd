// A LLaMA-family model loaded from a Hugging Face folder: config, float weights, tokenizer location.

import fs from "node:fs";
import { SlimtuneError } from "../../core/errors.js";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import type { FloatWeights, HostParam } from "../../arch/params.js";
import { readLlamaConfig } from "../../formats/hf-config.js";
import { loadLlamaWeights, saveLlamaFolder } from "../../formats/hf-folder.js";

export class LlamaModel implements FloatWeights {
  constructor(
    readonly config: LlamaConfig,
    /** Every parameter by its transformers name; training updates these arrays in place. */
    readonly weights: Map<string, HostParam>,
    /** Folder it was loaded from (tokenizer files are copied from here on save). */
    readonly sourceDir: string | null,
  ) {}

  static load(dir: string): LlamaModel {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      throw new SlimtuneError("E_NOT_FOUND", "model folder not found; pass a Hugging Face model folder with config.json and model.safetensors", dir);
    }
    const config = readLlamaConfig(dir);
    const data = loadLlamaWeights(dir, config);
    const shapes = llamaParamShapes(config);
    const weights = new Map<string, HostParam>();
    for (const [name, shape] of shapes) weights.set(name, { data: data.get(name)!, shape });
    return new LlamaModel(config, weights, dir);
  }

  get parameterCount(): number {
    let n = 0;
    for (const w of this.weights.values()) n += w.data.length;
    return n;
  }

  save(outDir: string): void {
    saveLlamaFolder(outDir, this.config, new Map([...this.weights].map(([k, w]) => [k, w.data])), this.sourceDir ?? undefined);
  }
}
