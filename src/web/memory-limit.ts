// What fits in a page: the training-memory estimate Node uses (train/memory-estimate.ts: weights,
// gradients and AdamW's moments, the activations the backward keeps, the logits) for each method
// the page trains, against WebAssembly's 4 GiB (one ORT instance is wasm32) or less when the
// browser reports less memory. Decided from config.json alone, so a model that cannot train is
// refused before its weights are read.

import type { LlamaConfig } from "../arch/llama/config.js";
import { linearLayers, llamaParamShapes } from "../arch/llama/shapes.js";
import { SlimtuneError } from "../core/errors.js";
import { type MemoryEstimate, estimateTrainingMemory } from "../train/memory-estimate.js";

/** A wasm32 memory holds at most 65536 pages of 64 KiB. */
export const WASM_MEMORY_CAP_BYTES = 4 * 2 ** 30;

export type PageMethod = "peqa" | "lora";

/** What the browser says about its memory (absent where it says nothing, as outside Chromium). */
export interface BrowserMemory {
  /** navigator.deviceMemory: the device's RAM in GiB, rounded down and capped (Chromium caps it at 8). */
  deviceMemoryGiB?: number;
  /** performance.memory.jsHeapSizeLimit (Chromium): the JS heap's cap, shown but not enforced (weights sit in ArrayBuffers). */
  jsHeapLimitBytes?: number;
}

export interface PageMemoryLimit {
  bytes: number;
  /** Where the limit comes from, for the message. */
  source: string;
}

/** The training shape the estimate is for (the page's batch, seq, 4-bit group and LoRA rank). */
export interface PageRun {
  batch: number;
  seq: number;
  groupSize: number | "channel";
  loraRank: number;
}

export interface MethodFit {
  method: PageMethod;
  trainableParameters: number;
  estimate: MemoryEstimate;
  fits: boolean;
}

export const gib = (bytes: number): string => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** The smaller of WASM's cap and the device memory the browser reports. */
export function pageMemoryLimit(browser: BrowserMemory = {}): PageMemoryLimit {
  const device = browser.deviceMemoryGiB;
  if (device !== undefined && Number.isFinite(device) && device > 0 && device * 2 ** 30 < WASM_MEMORY_CAP_BYTES) {
    return { bytes: device * 2 ** 30, source: `the ${device} GiB of memory this device reports (navigator.deviceMemory)` };
  }
  return { bytes: WASM_MEMORY_CAP_BYTES, source: "WebAssembly's 4 GiB memory cap (wasm32)" };
}

export function parameterCount(config: LlamaConfig): number {
  let n = 0;
  for (const shape of llamaParamShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** PEQA trains one scale per output row and group of every linear layer; LoRA r·(in + out) per linear layer (every linear module, the page's LoRA). */
export function trainableParameters(config: LlamaConfig, method: PageMethod, run: PageRun): number {
  let n = 0;
  for (const l of linearLayers(config)) {
    if (method === "peqa") n += l.outFeatures * (run.groupSize === "channel" ? 1 : Math.ceil(l.inFeatures / run.groupSize));
    else n += run.loraRank * (l.inFeatures + l.outFeatures);
  }
  return n;
}

/** The estimate for each method, and whether it fits under `limit`. */
export function pageMemoryPlan(config: LlamaConfig, run: PageRun, limit: PageMemoryLimit): MethodFit[] {
  const base = parameterCount(config);
  return (["peqa", "lora"] as const).map((method) => {
    const trainable = trainableParameters(config, method, run);
    // LoRA's factors are parameters beside the base; PEQA's scales replace nothing the float count misses.
    const total = method === "lora" ? base + trainable : base;
    const estimate = estimateTrainingMemory({ config, totalParameters: total, trainableParameters: trainable, batch: run.batch, seq: run.seq, checkpointActivations: false });
    return { method, trainableParameters: trainable, estimate, fits: estimate.totalBytes <= limit.bytes };
  });
}

const methodName = (m: PageMethod) => (m === "peqa" ? "PEQA" : "LoRA");

/** One line per method: its estimate, and whether it fits. */
export function describeFit(fit: MethodFit, limit: PageMemoryLimit): string {
  const e = fit.estimate;
  return `${methodName(fit.method)}: needs at least ${gib(e.totalBytes)} (weights ${gib(e.weightsBytes)}, optimizer ${gib(e.optimizerBytes)}, activations ${gib(e.activationBytes)}, logits ${gib(e.logitsBytes)}) — ${fit.fits ? "fits" : "does not fit"} in ${gib(limit.bytes)}`;
}

/** E_MEMORY naming the size and the limit when `method` (or, without one, every method) would not fit. */
export function assertFitsInPage(config: LlamaConfig, run: PageRun, limit: PageMemoryLimit, method?: PageMethod): MethodFit[] {
  const plan = pageMemoryPlan(config, run, limit);
  const asked = method ? plan.filter((f) => f.method === method) : plan;
  if (asked.every((f) => !f.fits)) {
    const params = `${(parameterCount(config) / 1e6).toFixed(0)} M parameters`;
    throw new SlimtuneError(
      "E_MEMORY",
      `this model (${params}) is too large to train in this page at batch ${run.batch} × seq ${run.seq}: the limit is ${gib(limit.bytes)}, ${limit.source}. ${asked.map((f) => describeFit(f, limit)).join("; ")}. Use a smaller model, batch or seq, or train it in Node (npx slimtune finetune)`,
    );
  }
  return plan;
}
