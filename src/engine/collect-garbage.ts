// A full V8 garbage collection on demand (Node only), for big transients V8 does not see coming:
// the weights a session creation has just copied into ONNX Runtime (session-file.ts), and the training loop's outputs.
//
// onnxruntime-node (1.30 and 1.31) hands back a fresh copy of every output, even one ORT already wrote into a
// buffer the loop keeps; at Qwen2.5-0.5B that is 2 GB of garbage per step. V8 frees such buffers only
// when its own heuristics run a collection, and neither the ORT run (native memory) nor AdamW (no
// JS allocation) prompts one, so the last step's copies were still resident during the next run.

import v8 from "node:v8";
import vm from "node:vm";

let collector: (() => void) | null | undefined;

/** Runs a full collection; false when this Node cannot expose one. */
export function collectGarbage(): boolean {
  if (collector === undefined) collector = findCollector();
  if (!collector) return false;
  collector();
  return true;
}

function findCollector(): (() => void) | null {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === "function") return exposed;
  try {
    // Node's documented way to set a V8 flag at run time; a fresh context then has `gc` as a global.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    return typeof gc === "function" ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
