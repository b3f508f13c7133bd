// Feeds for driving a KV-cache decoder graph (models/llama/kv-graph.ts) by hand, one session run per
// call: the token window at an offset, the empty cache of a prefill, and the cache a run returns
// handed to the next.

import type { HostTensor } from "../../src/engine/index.js";
import { ATTENTION_MASK, INPUT_IDS, POSITION_IDS, pastName, presentName } from "../../src/models/llama/kv-graph.js";

const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);

/** input_ids, attention_mask and position_ids for `tokens` following `from` cached positions (batch 1). */
export function kvStepFeeds(tokens: number[], from: number): Record<string, HostTensor> {
  return {
    [INPUT_IDS]: { data: i64(tokens), shape: [1, tokens.length] },
    [ATTENTION_MASK]: { data: i64(Array(from + tokens.length).fill(1)), shape: [1, from + tokens.length] },
    [POSITION_IDS]: { data: i64(tokens.map((_, i) => from + i)), shape: [1, tokens.length] },
  };
}

/** The zero-length past of every layer, for the prefill. */
export function emptyPast(kvHeads: readonly number[], headDim: number): Record<string, HostTensor> {
  const past: Record<string, HostTensor> = {};
  kvHeads.forEach((KV, i) => {
    for (const half of ["key", "value"] as const) past[pastName(i, half)] = { data: new Float32Array(0), shape: [1, KV, 0, headDim] };
  });
  return past;
}

/** The next run's past: this run's present key/value of every layer. */
export function pastFromPresent(out: Record<string, HostTensor>, layers: number): Record<string, HostTensor> {
  const past: Record<string, HostTensor> = {};
  for (let i = 0; i < layers; i++) for (const half of ["key", "value"] as const) past[pastName(i, half)] = out[presentName(i, half)]!;
  return past;
}
