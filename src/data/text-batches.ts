// Random training windows over a token stream, a held-out tail split, and perplexity windows.

import { SlimtuneError } from "../core/errors.js";
import type { Rng } from "../core/rng.js";

export interface TextBatchesOptions {
  batch: number;
  seq: number;
  rng: Rng;
}

export interface TokenBatch {
  /** [batch * seq], row-major */
  inputs: BigInt64Array;
  /** [batch * seq], row-major: inputs shifted left by one token */
  targets: BigInt64Array;
}

export class TextBatches {
  private readonly tokens: Int32Array;
  private readonly batch: number;
  private readonly seq: number;
  private readonly rng: Rng;

  constructor(tokens: Int32Array, { batch, seq, rng }: TextBatchesOptions) {
    positiveInt("batch size", batch, "--batch");
    positiveInt("sequence length", seq, "--seq");
    if (tokens.length < seq + 1) {
      throw new SlimtuneError(
        "E_DATA",
        `training data has ${tokens.length} tokens, but --seq ${seq} needs windows of ${seq + 1}; ` +
          `use a smaller --seq (at most ${Math.max(tokens.length - 1, 0)}) or more data`,
      );
    }
    this.tokens = tokens;
    this.batch = batch;
    this.seq = seq;
    this.rng = rng;
  }

  /** Draws `batch` windows of seq + 1 tokens uniformly from all tokens.length - seq start positions. */
  next(): TokenBatch {
    const { tokens, batch, seq } = this;
    const inputs = new BigInt64Array(batch * seq);
    const targets = new BigInt64Array(batch * seq);
    const starts = tokens.length - seq;
    for (let b = 0; b < batch; b++) {
      const start = this.rng.int(starts);
      const row = b * seq;
      let prev = BigInt(tokens[start]!);
      for (let i = 0; i < seq; i++) {
        const next = BigInt(tokens[start + i + 1]!);
        inputs[row + i] = prev;
        targets[row + i] = next;
        prev = next;
      }
    }
    return { inputs, targets };
  }
}

/**
 * Holds out the last `fraction` of the tokens (at least seq + 1, at most half); fraction 0 holds out nothing.
 * The tail rather than random windows: training windows are drawn only from `train`, so no held-out
 * token can ever appear in a training window, which a scattered split could not promise.
 * Both parts are views into `tokens`, not copies.
 */
export function splitHeldOut(
  tokens: Int32Array,
  fraction: number,
  seq: number,
): { train: Int32Array; heldOut: Int32Array } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new SlimtuneError("E_ARG", `held-out fraction ${fraction} must be in [0, 1); pass e.g. 0.05`);
  }
  positiveInt("sequence length", seq, "--seq");
  if (fraction === 0) return { train: tokens, heldOut: tokens.subarray(tokens.length) };
  const half = Math.floor(tokens.length / 2);
  if (half < seq + 1) {
    throw new SlimtuneError(
      "E_DATA",
      `data has ${tokens.length} tokens, too few to hold out ${seq + 1} (one --seq ${seq} window) and keep at least as many ` +
        `for training; use more data, a smaller --seq, or no held-out split`,
    );
  }
  const held = Math.min(half, Math.max(seq + 1, Math.round(tokens.length * fraction)));
  const cut = tokens.length - held;
  return { train: tokens.subarray(0, cut), heldOut: tokens.subarray(cut) };
}

/**
 * Non-overlapping windows of `ctx` tokens at 0, ctx, 2·ctx, …; a window of length L predicts its last
 * L - 1 tokens, so a 1-token tail predicts nothing and is dropped. The first token of each window is
 * never predicted: that is the price of non-overlapping windows.
 */
export function evalWindows(tokens: Int32Array, ctx: number): Array<{ start: number; length: number }> {
  if (!(Number.isInteger(ctx) && ctx >= 2)) {
    throw new SlimtuneError("E_ARG", `evaluation context ${ctx} must be an integer >= 2; pass e.g. --ctx 256`);
  }
  if (tokens.length < 2) {
    throw new SlimtuneError(
      "E_DATA",
      `evaluation data has ${tokens.length} token(s); at least 2 are needed to predict one; use a longer text`,
    );
  }
  const windows: Array<{ start: number; length: number }> = [];
  for (let start = 0; start < tokens.length; start += ctx) {
    const length = Math.min(ctx, tokens.length - start);
    if (length >= 2) windows.push({ start, length });
  }
  return windows;
}

function positiveInt(what: string, x: number, flag: string): void {
  if (!(Number.isInteger(x) && x >= 1)) {
    throw new SlimtuneError("E_ARG", `${what} ${x} must be a positive integer; pass e.g. ${flag} 8`);
  }
}
