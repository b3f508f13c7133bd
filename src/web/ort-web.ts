// The page's side of the platform seam: onnxruntime-web as the engine's binding, with its WASM
// files served beside the bundle. Multi-threaded WASM needs a cross-origin-isolated page (the
// COOP/COEP headers `slimtune web` sends); without them ORT falls back to one thread.

import * as ort from "onnxruntime-web";
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
  ort.env.wasm.numThreads = threads;
  if (opts.wasmPaths !== undefined) ort.env.wasm.wasmPaths = opts.wasmPaths;
  const executionProvider = opts.executionProvider ?? "wasm";
  useOrtBinding({ InferenceSession: ort.InferenceSession, Tensor: ort.Tensor, executionProviders: executionProvider === "webgpu" ? ["webgpu", "wasm"] : ["wasm"] });
  return { executionProvider, threads, crossOriginIsolated: isolated, webgpuAvailable: g.navigator?.gpu !== undefined };
}
