// The page's side of the platform seam: onnxruntime-web as the engine's binding, with its WASM
// files served beside the bundle. Multi-threaded WASM needs a cross-origin-isolated page (the
// COOP/COEP headers `slimtune web` sends); without them ORT falls back to one thread.
//
// Two builds of onnxruntime-web, chosen by execution provider: the WASM EP runs on the plain SIMD
// build (`onnxruntime-web/wasm`), WebGPU on the JSEP build (`onnxruntime-web`). The JSEP build can
// run the WASM EP too, but slower: measured in headless Chromium on ref-llama-5m
// (bench/web-train.mjs --builds), creating the step graph's session took about twice as long, the
// first runs of a fresh session (while V8 tiers the kernels up) were slower, and LoRA's warm step
// 1.1–1.6× (docs/benchmarks.md §4). The bundle is built with the
// "onnxruntime-web-use-extern-wasm" condition (scripts/build-web.mjs), so each build loads its own
// glue (ort-wasm-simd-threaded[.jsep].mjs) from wasmPaths and its worker threads start from there.

import * as ortJsep from "onnxruntime-web";
import * as ortWasm from "onnxruntime-web/wasm";
import { useOrtBinding } from "../engine/ort-binding.js";

export interface WebRuntimeOptions {
  /** URL folder holding ort-wasm-*.wasm/.mjs (default: the page's folder). */
  wasmPaths?: string;
  /** WASM threads (default: every core the browser reports, capped at 4). */
  threads?: number;
  /** "wasm" (default) or "webgpu" (falls back to WASM for ops it lacks). */
  executionProvider?: "wasm" | "webgpu";
}

export interface WebRuntime {
  executionProvider: "wasm" | "webgpu";
  threads: number;
  crossOriginIsolated: boolean;
  webgpuAvailable: boolean;
  /** The onnxruntime-web build the sessions run on. */
  build: "wasm" | "jsep";
}

interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  navigator?: { hardwareConcurrency?: number; gpu?: unknown };
}

/** Chooses onnxruntime-web for every session the engine compiles from now on. */
export function useOnnxRuntimeWeb(opts: WebRuntimeOptions = {}): WebRuntime {
  const g = globalThis as BrowserGlobals;
  const isolated = g.crossOriginIsolated === true;
  // Without isolation there is no SharedArrayBuffer, so ORT can only run one thread.
  const threads = isolated ? (opts.threads ?? Math.min(4, g.navigator?.hardwareConcurrency ?? 1)) : 1;
  const executionProvider = opts.executionProvider ?? "wasm";
  const build = executionProvider === "webgpu" ? "jsep" : "wasm";
  const ort = build === "jsep" ? ortJsep : ortWasm;
  ort.env.wasm.numThreads = threads;
  if (opts.wasmPaths !== undefined) ort.env.wasm.wasmPaths = opts.wasmPaths;
  useOrtBinding({ InferenceSession: ort.InferenceSession, Tensor: ort.Tensor, executionProviders: executionProvider === "webgpu" ? ["webgpu", "wasm"] : ["wasm"] });
  return { executionProvider, threads, crossOriginIsolated: isolated, webgpuAvailable: g.navigator?.gpu !== undefined, build };
}
