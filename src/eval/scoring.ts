// Turns a model folder (+ optional adapter folder) into something perplexity() and accuracy() can
// score: a float or quantized base, with a PEFT LoRA adapter or a PEQA scale adapter on top.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../errors.js";
import { PEFT_CONFIG_FILE } from "../formats/peft.js";
import type { LoadedBase } from "../methods/registry.js";
import { denseLoraBase, loraFromAdapter } from "../methods/lora/index.js";
import { isPeqaAdapter, loadPeqaAdapter } from "../methods/peqa/adapter.js";
import { quantizedLoraBase } from "../methods/qlora/index.js";
import { frozenScoring } from "../models/llama/scoring.js";
import { QuantizedParams } from "../parts/quantized-params.js";
import type { ScoringModel } from "./perplexity.js";

export function scoringFor(base: LoadedBase, adapterDir?: string): ScoringModel & { description: string } {
  if (!adapterDir) {
    if (base.kind === "float") return { ...frozenScoring(base.model), description: "float model" };
    const qm = base.model;
    return {
      config: qm.config,
      params: (g) => new QuantizedParams(g, qm, { fused: true }),
      weightFeeds: () => ({}),
      cacheKey: "quantized",
      description: `${qm.spec.scheme} ${qm.spec.bits}-bit model (MatMulNBits where possible)`,
    };
  }
  if (!fs.existsSync(adapterDir)) throw new SlimtuneError("E_NOT_FOUND", "adapter folder not found", adapterDir);
  if (isPeqaAdapter(adapterDir)) {
    if (base.kind !== "quantized") {
      throw new SlimtuneError("E_ARG", "a PEQA adapter holds scales for a quantized model; pass that quantized folder as --model", adapterDir);
    }
    const qm = base.model;
    const adapter = loadPeqaAdapter(adapterDir, qm);
    const feeds = Object.fromEntries(adapter.scales);
    return {
      config: qm.config,
      params: (g) => new QuantizedParams(g, qm, { scaleInputs: true }),
      weightFeeds: () => feeds,
      cacheKey: "peqa",
      description: `PEQA adapter on a ${qm.spec.bits}-bit model`,
    };
  }
  if (fs.existsSync(path.join(adapterDir, PEFT_CONFIG_FILE))) {
    const lora = loraFromAdapter(base.kind === "float" ? denseLoraBase(base.model) : quantizedLoraBase(base.model), adapterDir);
    const feeds = Object.fromEntries(lora.trainable);
    return {
      config: lora.config,
      params: (g) => lora.params(g),
      weightFeeds: () => feeds,
      cacheKey: "lora",
      description: `LoRA adapter (r=${lora.rank}) on a ${base.kind} model`,
    };
  }
  throw new SlimtuneError("E_CONFIG", `neither ${PEFT_CONFIG_FILE} (LoRA) nor peqa_adapter.json (PEQA) here; pass an adapter folder that finetune wrote`, adapterDir);
}
