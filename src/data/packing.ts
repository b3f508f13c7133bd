// Packs tokenized examples into fixed windows of T positions so little compute goes to padding: several
// short examples share a row, each attending only to itself (a block-diagonal causal mask) with
// positions restarting at 0, so each sees exactly what it would alone. An example of n tokens fills
// n − 1 positions (inputs ids[0..n−2], targets ids[1..n−1]); the rest of a row is padding, which is
// its own block and carries no loss.

import { SlimtuneError } from "../core/errors.js";
import type { SftExample } from "./sft-examples.js";

/** A large negative, not −∞: a fully masked row (none here, but padding) stays finite in softmax. */
const MASKED = -1e30;

export interface PackedBatch {
  batch: number;
  seq: number;
  /** [B·T] input ids. */
  ids: BigInt64Array;
  /** [B·T] next-token targets. */
  targets: BigInt64Array;
  /** [B·T] 1 where the target carries loss. */
  lossMask: Float32Array;
  /** [B·T] position of each token within its own example. */
  positions: BigInt64Array;
  /** [B, 1, T, T] additive attention mask: 0 where query i may see key j (same example, j ≤ i). */
  mask: Float32Array;
  /** Real (non-padding) input positions. */
  tokens: number;
  lossTokens: number;
  examples: number;
}

/** Positions an example fills. */
export const positionsOf = (e: SftExample) => e.ids.length - 1;

/**
 * First-fit packing in the given order: an example joins the first row with room for it, else
 * starts a new one (rows that have less room than the shortest example are skipped for good, so
 * the search stays short). With `pack` false every example gets a row of its own.
 */
export function packRows(examples: readonly SftExample[], seq: number, pack: boolean): SftExample[][] {
  const rows: SftExample[][] = [];
  const free: number[] = [];
  let shortest = seq;
  for (const e of examples) shortest = Math.min(shortest, positionsOf(e));
  let firstOpen = 0;
  for (const e of examples) {
    const n = positionsOf(e);
    if (n > seq || n < 1) throw new SlimtuneError("E_DATA", `line ${e.line}: the example fills ${n} positions; a window holds 1 to ${seq}`);
    let r = pack ? firstOpen : rows.length;
    while (r < rows.length && free[r]! < n) r++;
    if (r === rows.length) {
      rows.push([]);
      free.push(seq);
    }
    rows[r]!.push(e);
    free[r]! -= n;
    while (firstOpen < rows.length && free[firstOpen]! < shortest) firstOpen++;
  }
  return rows;
}

/** Host tensors of `rows` (at most `batch`; missing rows are all padding). */
export function packedBatch(rows: readonly SftExample[][], batch: number, seq: number, padId: number): PackedBatch {
  if (rows.length > batch) throw new Error(`packedBatch: ${rows.length} rows for a batch of ${batch}`);
  const T = seq;
  const ids = new BigInt64Array(batch * T).fill(BigInt(padId));
  const targets = new BigInt64Array(batch * T).fill(BigInt(padId));
  const lossMask = new Float32Array(batch * T);
  const positions = new BigInt64Array(batch * T);
  const mask = new Float32Array(batch * T * T).fill(MASKED);
  let tokens = 0;
  let lossTokens = 0;
  let examples = 0;
  for (let b = 0; b < batch; b++) {
    let at = 0;
    const block = (start: number, length: number) => {
      for (let i = 0; i < length; i++) {
        const row = ((b * T + start + i) * T) + start;
        mask.fill(0, row, row + i + 1);
      }
    };
    for (const e of rows[b] ?? []) {
      const n = positionsOf(e);
      if (at + n > T) throw new Error(`packedBatch: row ${b} overflows ${T} positions`);
      for (let i = 0; i < n; i++) {
        const k = b * T + at + i;
        ids[k] = BigInt(e.ids[i]!);
        targets[k] = BigInt(e.ids[i + 1]!);
        lossMask[k] = e.loss[i + 1]!;
        lossTokens += e.loss[i + 1]!;
        positions[k] = BigInt(i);
      }
      block(at, n);
      at += n;
      tokens += n;
      examples++;
    }
    // Padding: one block of its own, so no real token sees it and it sees no real token.
    if (at < T) {
      for (let i = at; i < T; i++) positions[b * T + i] = BigInt(i - at);
      block(at, T - at);
    }
  }
  return { batch, seq: T, ids, targets, lossMask, positions, mask, tokens, lossTokens, examples };
}
