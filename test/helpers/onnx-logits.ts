// Logits of an exported transformers.js folder's ONNX file run by onnxruntime-node, for comparing
// with slimtune's own forward.

import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import type { LlamaConfig } from "../../src/arch/llama/config.js";

/** Logits of the exported folder's ONNX file for `ids` from an empty cache, by onnxruntime-node. */
export async function exportedLogits(folder: string, c: LlamaConfig, ids: number[]): Promise<Float32Array> {
  const file = fs.readdirSync(path.join(folder, "onnx")).find((f) => f.endsWith(".onnx"))!;
  const session = await ort.InferenceSession.create(path.join(folder, "onnx", file));
  const T = ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, T]),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(T).fill(1n), [1, T]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from(ids, (_, i) => BigInt(i)), [1, T]),
  };
  for (let i = 0; i < c.numLayers; i++) for (const half of ["key", "value"]) feeds[`past_key_values.${i}.${half}`] = new ort.Tensor("float32", new Float32Array(0), [1, c.numKvHeads, 0, c.headDim]);
  const out = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return out;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function argmaxRows(x: Float32Array, V: number): number[] {
  return Array.from({ length: x.length / V }, (_, t) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (x[t * V + v]! > x[t * V + best]!) best = v;
    return best;
  });
}
