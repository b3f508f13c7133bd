// GPTQ onto a fixed block grid (issue 17 item 3: `quantize --method gptq --target q4_k`): the codes
// are chosen on the grid a runtime's quantizer would use, so the file the runtime reads is the
// calibrated one. For each row, when a super-block of `target.size` columns begins, its grid (scales
// and mins) is chosen by the target from the row's current values — every earlier column's error
// already spread into them — exactly as ggml's reference quantizer chooses it from weights; then
// column by column each weight takes the grid's nearest code, and its error moves the columns not yet
// quantized through the inverse-Hessian factor, as in gptq.ts. Columns run in natural order (a
// super-block is contiguous: no act-order). The grid itself lives with the format (formats/gguf
// k-quants.ts supplies it): this layer only needs a grid's code and value of each position.

import { SlimtuneError } from "../core/errors.js";
import type { PreparedHessian } from "./gptq.js";
import type { HostGemm } from "./linalg/host-gemm.js";

/** The grid of one super-block: nearest code of a value at position c, and the value of a code. */
export interface BlockGrid {
  code(c: number, v: number): number;
  value(c: number, q: number): number;
}

/** A block format GPTQ can target (Q4_K: 256 columns in 144 bytes). */
export interface BlockTarget {
  name: string;
  /** Columns per super-block. */
  size: number;
  /** Bytes per super-block. */
  bytes: number;
  /** Chooses the grid for `size` values, writing its header (scales, mins) into `block`. */
  choose(values: Float32Array, block: Uint8Array): BlockGrid;
  /** Writes the codes into `block` (whose header `choose` wrote). */
  pack(codes: Uint8Array, block: Uint8Array): void;
}

export interface BlockGptqResult {
  /** The matrix as the target's blocks, row by row. */
  blocks: Uint8Array;
  /** What the blocks decode to, [n, k]. */
  values: Float32Array;
  /** Σ (w − q)² / U_ii² / 2: GPTQ's loss estimate, comparable with gptq.ts's. */
  loss: number;
  seconds: number;
}

/** GPTQ-quantizes W [n, k] onto `target`'s blocks with the prepared Hessian of its input (natural column order). */
export async function gptqQuantizeBlocks(w: Float32Array, n: number, k: number, prep: PreparedHessian, target: BlockTarget, gemm: HostGemm, layer = "the layer"): Promise<BlockGptqResult> {
  const started = performance.now();
  if (prep.perm) throw new SlimtuneError("E_ARG", `${target.name} blocks hold contiguous columns: GPTQ onto them cannot use act-order (${layer}); drop --act-order`);
  if (k % target.size !== 0) throw new SlimtuneError("E_SHAPE", `${layer} has rows of ${k} columns, not whole ${target.name} super-blocks of ${target.size}`);
  if (w.length !== n * k || prep.k !== k) throw new SlimtuneError("E_SHAPE", `weight of ${layer} has ${w.length} values and its Hessian is ${prep.k} wide; [${n}, ${k}] needs ${n * k}`);
  const S = target.size;
  const perRow = k / S;
  const { hinv } = prep;
  const W = Float64Array.from(w);
  for (const c of prep.dead) for (let r = 0; r < n; r++) W[r * k + c] = 0;
  const blocks = new Uint8Array(n * perRow * target.bytes);
  const values = new Float32Array(n * k);
  const codes = new Uint8Array(S);
  const row = new Float32Array(S);
  let loss = 0;
  // One super-block of columns at a time: its grid is chosen from values every earlier error reached.
  for (let b = 0; b < perRow; b++) {
    const i1 = b * S;
    const i2 = i1 + S;
    const err = new Float64Array(n * S);
    for (let r = 0; r < n; r++) {
      const at = r * k;
      for (let j = 0; j < S; j++) row[j] = W[at + i1 + j]!;
      const block = blocks.subarray((r * perRow + b) * target.bytes, (r * perRow + b + 1) * target.bytes);
      const grid = target.choose(row, block);
      for (let i = 0; i < S; i++) {
        const col = i1 + i;
        const d = hinv[col * k + col]!;
        const wv = W[at + col]!;
        const q = grid.code(i, Math.fround(wv));
        codes[i] = q;
        const v = grid.value(i, q);
        values[at + col] = v;
        const diff = wv - v;
        loss += (diff * diff) / (d * d) / 2;
        const e = diff / d;
        err[r * S + i] = e;
        if (e === 0) continue;
        for (let j = i + 1; j < S; j++) W[at + i1 + j]! -= e * hinv[col * k + i1 + j]!;
      }
      target.pack(codes, block);
    }
    if (i2 < k) {
      // W[:, i2:] −= Err · U[i1:i2, i2:]
      const rest = k - i2;
      const u = new Float64Array(S * rest);
      for (let i = 0; i < S; i++) u.set(hinv.subarray((i1 + i) * k + i2, (i1 + i + 1) * k), i * rest);
      const delta = await gemm.mul(err, u, { m: n, k: S, n: rest });
      for (let r = 0; r < n; r++) for (let j = 0; j < rest; j++) W[r * k + i2 + j]! -= delta[r * rest + j]!;
    }
  }
  return { blocks, values, loss, seconds: (performance.now() - started) / 1000 };
}
