// What a user needs to know about a pruned model folder beyond its parameter count: which runtimes
// load it (per-layer widths are slimtune's own config key), and what the cut cost in loss. Shared by
// `prune` and by `finetune --method finegates`, whose result is a pruned folder too.

import fs from "node:fs";
import path from "node:path";
import type { LlamaConfig } from "../arch/llama/config.js";
import { FINEGATES_CONFIG } from "../formats/finegates-run.js";
import { LAYER_SHAPES_KEY, readLlamaConfig } from "../formats/hf-config.js";
import type { PruneReport } from "../prune/surgery.js";
import { describePrune } from "./prune-args.js";

/** Which runtimes load a pruned folder with this config. */
export function loadersNote(config: LlamaConfig): string {
  if (config.layerShapes && config.qkNorm) {
    return `per-layer widths (config.json "${LAYER_SHAPES_KEY}"): slimtune loads this folder, and transformers.js after slimtune export --format onnx; llama.cpp cannot (its per-layer architecture deci has no q/k norms) and stock transformers expects one width for every layer`;
  }
  if (config.layerShapes) {
    return `per-layer widths (config.json "${LAYER_SHAPES_KEY}"): slimtune loads this folder, and llama.cpp after slimtune export --format gguf (architecture deci); stock transformers cannot, it expects one width for every layer`;
  }
  const family = config.modelType === "qwen3" ? "Qwen3" : "LLaMA";
  return `the same widths in every layer: a plain ${family} config that transformers, slimtune and llama.cpp (slimtune export --format gguf) all load`;
}

/** The loss before and after the cut on the calibration batches, or how to measure it when there were none. */
export function qualityNote(loss: { before: number | null; after: number | null; batches: number }, out: string, modelDir: string): string {
  const measure = `slimtune eval --model ${out} --reference ${modelDir} --data test.txt`;
  if (loss.before === null || loss.after === null) return `quality: not measured (no calibration data); held-out perplexity and KL to the original: ${measure}`;
  const delta = loss.after - loss.before;
  return (
    `quality: calibration loss ${loss.before.toFixed(4)} → ${loss.after.toFixed(4)} (${delta >= 0 ? "+" : ""}${delta.toFixed(4)} nats, perplexity ×${Math.exp(delta).toFixed(2)}) ` +
    `on the ${loss.batches} batches importance was measured on; held-out: ${measure}`
  );
}

/**
 * What a FineGates run removed, from the removal report its finegates.json carries, and which runtimes
 * load the pruned folder; [] when `outDir` holds no FineGates run.
 */
export function fineGatesRemovalLines(outDir: string): string[] {
  const file = path.join(outDir, FINEGATES_CONFIG);
  if (!fs.existsSync(file)) return [];
  const report = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<PruneReport>;
  const counts = [report.parametersBefore, report.parametersAfter, report.blockParametersBefore, report.blockParametersAfter];
  if (!counts.every((n) => typeof n === "number") || !Array.isArray(report.layers)) return [];
  const [parameters] = describePrune(report as PruneReport);
  return [`FineGates removed the gated-off heads and channels: ${parameters}`, `the model in ${outDir} has ${loadersNote(readLlamaConfig(outDir))}`];
}
