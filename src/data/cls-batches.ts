// Padded classification batches: right padding, lengths bucketed to a few static shapes so a
// handful of compiled graphs serve every batch.

import type { TokenizedExample } from "./examples.js";

/** Padded length for a batch whose longest example has `len` tokens: 16, 32, 64, … up to `maxLen`. */
export function bucketLength(len: number, maxLen: number): number {
  let t = 16;
  while (t < len && t < maxLen) t *= 2;
  return Math.min(t, maxLen);
}

/** ids [B, T] right-padded with `padId`, the flat index of each last real token, and the labels. */
export function padBatch(examples: readonly TokenizedExample[], maxLen: number, padId: number) {
  const B = examples.length;
  const T = bucketLength(Math.max(...examples.map((e) => Math.min(e.ids.length, maxLen))), maxLen);
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const last = new BigInt64Array(B);
  const labels = new BigInt64Array(B);
  let tokens = 0;
  examples.forEach((e, b) => {
    const n = Math.max(1, Math.min(e.ids.length, T));
    for (let t = 0; t < Math.min(n, e.ids.length); t++) ids[b * T + t] = BigInt(e.ids[t]!);
    last[b] = BigInt(b * T + n - 1);
    labels[b] = BigInt(e.label);
    tokens += n;
  });
  return { B, T, ids, last, labels, tokens };
}
