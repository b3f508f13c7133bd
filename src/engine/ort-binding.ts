// The platform seam for ONNX Runtime. onnxruntime-node (Node) and onnxruntime-web (a page) share
// onnxruntime-common's API — InferenceSession.create(bytes) and Tensor — so the engine runs on
// whichever binding is chosen here. Node needs no call: the native binding is imported on first
// use. A page calls useOrtBinding(ort-web) before compiling anything, so the native module is
// never reached (the web bundle leaves it out).

import type { InferenceSession, Tensor } from "onnxruntime-common";

export interface OrtBinding {
  InferenceSession: typeof InferenceSession;
  Tensor: typeof Tensor;
  /** Execution providers every session asks for, in order ("webgpu", "wasm"); default: the binding's own (CPU in Node). */
  executionProviders?: readonly string[];
}

let chosen: OrtBinding | null = null;

/** Chooses the binding every later session uses (a page passes onnxruntime-web). */
export function useOrtBinding(binding: OrtBinding): void {
  chosen = binding;
}

/** The chosen binding; in Node, onnxruntime-node when nothing was chosen. */
export async function ortBinding(): Promise<OrtBinding> {
  chosen ??= (await import("onnxruntime-node")) as unknown as OrtBinding;
  return chosen;
}
