// What fits in a page: the WASM heap a training step takes, predicted from the training-memory
// estimate Node uses (train/memory-estimate.ts: weights, gradients and AdamW's moments, the
// activations the backward keeps, the logits) by a per-method factor measured in Chromium
// (PAGE_HEAP_FIT), against WebAssembly's 4 GiB (ORT-web's heap is one wasm32 memory) or less when
// the browser reports less memory. Decided from config.json alone, so a model that cannot train is
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
  /** The WASM heap one training step is predicted to take (PAGE_HEAP_FIT applied to the estimate). */
  heapBytes: number;
  fits: boolean;
}

/**
 * ORT-web's WASM heap after one training step, as `factor × estimate.totalBytes + baseBytes`,
 * measured in headless Chromium by bench/web-limits.mjs (bench/results/web-limits.json, batch 4 ×
 * seq 64, 4-bit g64, LoRA r8, each method in a fresh page) and fitted through two models:
 *   PEQA: ref-llama-5m 0.12 GiB (estimate 0.063), SmolLM2-135M shape 1.49 GiB (estimate 0.973);
 *   LoRA: ref-llama-5m 0.13 GiB (estimate 0.065), SmolLM2-135M shape 1.92 GiB (estimate 0.991).
 * The heap holds more than the estimate counts: LoRA's frozen float weights are copied into it as
 * the model's bytes, parsed and made tensors while the session is created (the heap never shrinks,
 * so that peak stays), and PEQA's graph dequantizes every weight to float and takes the gradient
 * of it before reducing it to the scales. The heap grows in steps, so these are its size, a little
 * above what was in use. Checked on a third model: the Qwen2.5-0.5B shape, predicted over 4 GiB
 * with both methods, fails in the page with both (docs/benchmarks.md §4).
 */
export const PAGE_HEAP_FIT: Record<PageMethod, { factor: number; baseBytes: number }> = {
  peqa: { factor: 1.505, baseBytes: 0.025 * 2 ** 30 },
  lora: { factor: 1.933, baseBytes: 0.004 * 2 ** 30 },
};

/** The WASM heap a training step of `method` takes, predicted from Node's estimate (PAGE_HEAP_FIT). */
export function predictedHeapBytes(method: PageMethod, estimate: MemoryEstimate): number {
  const fit = PAGE_HEAP_FIT[method];
  return fit.factor * estimate.totalBytes + fit.baseBytes;
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
    const heapBytes = predictedHeapBytes(method, estimate);
    return { method, trainableParameters: trainable, estimate, heapBytes, fits: heapBytes <= limit.bytes };
  });
}

const methodName = (m: PageMethod) => (m === "peqa" ? "PEQA" : "LoRA");

/** One line per method: the WASM heap it needs, the estimate that comes from, and whether it fits. */
export function describeFit(fit: MethodFit, limit: PageMemoryLimit): string {
  const e = fit.estimate;
  const factor = PAGE_HEAP_FIT[fit.method].factor;
  return `${methodName(fit.method)}: needs about ${gib(fit.heapBytes)} of WASM memory (${factor}× as measured in Chromium, of a ${gib(e.totalBytes)} estimate: weights ${gib(e.weightsBytes)}, optimizer ${gib(e.optimizerBytes)}, activations ${gib(e.activationBytes)}, logits ${gib(e.logitsBytes)}) — ${fit.fits ? "fits" : "does not fit"} in ${gib(limit.bytes)}`;
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
