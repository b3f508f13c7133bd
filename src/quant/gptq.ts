// GPTQ (Frantar et al. 2022, arXiv 2210.17323): quantize a linear layer column by column and spread
// each column's rounding error over the columns not yet quantized, weighted by the inverse Hessian
// of the layer-wise objective ‖WX − ŴX‖² (H = 2XᵀX/n from calibration inputs X).
//
// As in the reference implementation (gptq.py `fasterquant`) and GPTQModel:
// - dead columns (H_kk = 0: no calibration input reached them) get H_kk = 1 and zero weights;
// - act-order (desc_act) processes columns by decreasing H_kk and records each column's group in g_idx;
// - dampening λ = dampPercent · mean(diag H) is added to the diagonal (doubled until H + λI factors);
// - U = chol((H + λI)⁻¹) (upper) gives every update: column i's error e = (w − q) / U_ii moves the
//   remaining columns by −e · U[i, j];
// - lazy batches: the rest of the matrix receives a block of `blockSize` columns' accumulated errors
//   in one product Err · U[block, rest] through ONNX Runtime; inside the block, sub-blocks of 16
//   columns run column by column on the host and reach the block's later columns in one product;
// - float32 throughout, as the reference: W, the errors, U (prepareHessianBlocked) and the products;
// - group scales and zeros are fixed when a group starts, from the columns' values at that moment
//   (every earlier column's error already applied: blocks are widened to whole groups, so a group
//   never straddles two blocks); per-channel parameters come from the whole row before any update.
// The grid is RTN's (rtnGroupParams, v1-safe zero points), so the result is an ordinary GPTQ layer.
// Scales are rounded to float16 before use: the checkpoint stores them so, and the error feedback
// then accounts for exactly the weights a loader will see.

import { SlimtuneError } from "../core/errors.js";
import { roundToF16 } from "../core/f16.js";
import { type RtnStats, rtnCode, rtnGroupParams } from "./kinds/rtn.js";
import { type FactorGemm, type FactorPrecision, upperCholeskyOfInverseBlocked } from "./linalg/blocked-cholesky.js";
import { checkSquare, upperCholeskyOfInverse } from "./linalg/cholesky.js";
import type { HostGemm } from "./linalg/host-gemm.js";
import { checkQuantSpec, resolveGroupSize } from "./spec.js";
import type { QuantSpec, RtnLinear } from "./types.js";

export interface GptqSettings {
  /** Columns per lazy batch update (the reference's blocksize). */
  blockSize: number;
  /** λ as a fraction of the mean diagonal of H. */
  dampPercent: number;
  /** Process columns by decreasing H_kk (desc_act) and record g_idx. */
  actOrder: boolean;
}

/** Columns whose rank-1 updates run in JavaScript before one Gemm carries them to the rest of the block. */
const SUB_BLOCK = 16;
/** Rows per tile when W goes to Wᵀ and the codes come back. */
const TILE = 16;

export const defaultGptqSettings: GptqSettings = { blockSize: 128, dampPercent: 0.01, actOrder: false };

/** What GPTQ needs from one Hessian; layers that share an input (q/k/v, gate/up) share it. */
export interface PreparedHessian {
  k: number;
  /** Upper factor U of (H + λI)⁻¹ = UᵀU, in processing order, [K, K] row-major (float32 from the blocked path). */
  hinv: Float32Array | Float64Array;
  /** perm[j] = the original column processed j-th (act-order); null: natural order. */
  perm: Int32Array | null;
  /** Columns with H_kk = 0, whose weights are zeroed. */
  dead: Int32Array;
  /** The dampening fraction actually used (larger than asked when H + λI did not factor). */
  dampPercent: number;
  seconds: number;
}

function checkSettings(s: GptqSettings): void {
  if (!Number.isInteger(s.blockSize) || s.blockSize < 1) throw new SlimtuneError("E_ARG", `GPTQ block size ${s.blockSize} must be a positive integer; the reference uses 128`);
  if (!(s.dampPercent > 0 && s.dampPercent < 1)) {
    throw new SlimtuneError("E_ARG", `--damp ${s.dampPercent} must lie in (0, 1) (a fraction of the mean Hessian diagonal; GPTQ uses 0.01)`);
  }
}

/** H in processing order (act-order), dead columns' diagonal set to 1, and what dampening needs. */
interface OrderedHessian {
  /** H in processing order: H itself (never written) when there is no permutation. */
  ordered: Float64Array;
  /** Its diagonal with dead columns' entries set to 1, in processing order. */
  diag: Float64Array;
  perm: Int32Array | null;
  dead: Int32Array;
  meanDiag: number;
}

function orderHessian(h: Float64Array, k: number, settings: GptqSettings, layer: string): OrderedHessian {
  checkSettings(settings);
  checkSquare(h, k, `the Hessian of ${layer}`);
  const deadList: number[] = [];
  const diag = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    diag[i] = h[i * k + i]!;
    if (diag[i] === 0) {
      deadList.push(i);
      diag[i] = 1;
    }
  }
  let mean = 0;
  for (let i = 0; i < k; i++) mean += diag[i]!;
  const dead = Int32Array.from(deadList);
  if (!settings.actOrder) return { ordered: h, diag, perm: null, dead, meanDiag: mean / k };
  // Stable: ties keep their original order, so the result is deterministic.
  const perm = Int32Array.from({ length: k }, (_, i) => i).sort((a, b) => diag[b]! - diag[a]! || a - b);
  const ordered = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    const pi = perm[i]!;
    for (let j = 0; j < k; j++) ordered[i * k + j] = h[pi * k + perm[j]!]!;
  }
  return { ordered, diag: Float64Array.from(perm, (pi) => diag[pi]!), perm, dead, meanDiag: mean / k };
}

/** The next dampening fraction after `percent` failed to make H + λI factor, or an E_ARG at 50 %. */
function nextDamp(percent: number, layer: string): number {
  if (percent >= 0.5) {
    throw new SlimtuneError(
      "E_ARG",
      `the Hessian of ${layer} is not positive definite even with ${(100 * percent).toFixed(0)} % dampening; the calibration inputs are degenerate — use more calibration samples (--calib-samples) or text that the model can read`,
    );
  }
  return Math.min(0.5, percent * 2);
}

/** The diagonal of H + λI (dead columns' entries 1 before λ), in processing order. */
function dampedDiagonal(o: OrderedHessian, percent: number): Float64Array {
  const lambda = percent * o.meanDiag;
  return o.diag.map((v) => v + lambda);
}

function damped(o: OrderedHessian, k: number, percent: number): Float64Array {
  const out = o.ordered.slice();
  const diag = dampedDiagonal(o, percent);
  for (let i = 0; i < k; i++) out[i * k + i] = diag[i]!;
  return out;
}

/** Dead columns, act-order, dampening and U = chol((H + λI)⁻¹) for a Hessian H [k, k] (left untouched); flat loops (cholesky.ts). */
export function prepareHessian(h: Float64Array, k: number, settings: GptqSettings, layer = "the layer"): PreparedHessian {
  const started = performance.now();
  const o = orderHessian(h, k, settings, layer);
  for (let percent = settings.dampPercent; ; percent = nextDamp(percent, layer)) {
    const hinv = upperCholeskyOfInverse(damped(o, k, percent), k);
    if (hinv) return { k, hinv, perm: o.perm, dead: o.dead, dampPercent: percent, seconds: (performance.now() - started) / 1000 };
  }
}

/**
 * prepareHessian with the factorizations blocked and their O(k³) products in ONNX Runtime
 * (linalg/blocked-cholesky.ts): what models of real widths use. Same result up to rounding.
 */
export async function prepareHessianBlocked(h: Float64Array, k: number, settings: GptqSettings, gemm: FactorGemm, layer = "the layer", precision: FactorPrecision = "float32"): Promise<PreparedHessian> {
  const started = performance.now();
  const o = orderHessian(h, k, settings, layer);
  for (let percent = settings.dampPercent; ; percent = nextDamp(percent, layer)) {
    const hinv = await upperCholeskyOfInverseBlocked(o.ordered, k, gemm, { precision, diagonal: dampedDiagonal(o, percent) });
    if (hinv) return { k, hinv, perm: o.perm, dead: o.dead, dampPercent: percent, seconds: (performance.now() - started) / 1000 };
  }
}

export interface GptqResult {
  layer: RtnLinear;
  /** Σ (w − q)² / U_ii² / 2 over the layer: GPTQ's estimate of the increase in ‖WX − ŴX‖²·n/2. */
  loss: number;
  seconds: number;
}

export interface GptqLayerOptions {
  settings: GptqSettings;
  gemm: HostGemm;
  layer?: string;
  stats?: RtnStats;
}

/** GPTQ-quantizes W [n, k] (row-major) with the RTN grid of `spec` and the prepared Hessian of its input. */
export async function gptqQuantize(w: Float32Array, n: number, k: number, prep: PreparedHessian, spec: QuantSpec, opts: GptqLayerOptions): Promise<GptqResult> {
  const started = performance.now();
  const layer = opts.layer ?? "the layer";
  checkQuantSpec(spec);
  if (spec.scheme !== "rtn") throw new SlimtuneError("E_ARG", `GPTQ quantizes onto an integer grid; ${layer} asks for scheme "${spec.scheme}" — use scheme rtn`);
  if (w.length !== n * k || prep.k !== k) {
    throw new SlimtuneError("E_SHAPE", `weight of ${layer} has ${w.length} values and its Hessian is ${prep.k} wide; [${n}, ${k}] needs ${n * k} values and a ${k}-wide Hessian`);
  }
  const gs = resolveGroupSize(spec, k, layer);
  const grouped = gs < k;
  const groups = k / gs;
  const maxq = (1 << spec.bits) - 1;
  const { perm, hinv } = prep;
  // Blocks hold whole groups, so every group's parameters see all earlier updates.
  const block = grouped ? Math.max(opts.settings.blockSize, gs) : opts.settings.blockSize;
  if (grouped && block % gs !== 0) {
    throw new SlimtuneError("E_ARG", `GPTQ block size ${block} is not a multiple of group size ${gs} for ${layer}; use a block size of 128 (or any multiple of the group size)`);
  }

  // Wᵀ in processing order, float32 as the reference keeps W: column j of W is row j of `wt`, n
  // contiguous values, so quantizing a column and the rank-1 updates of the block's later columns
  // are tight loops over contiguous rows, and the columns not yet reached are one contiguous tail.
  for (let i = 0; i < w.length; i++) {
    if (!Number.isFinite(w[i]!)) {
      throw new SlimtuneError("E_ARG", `weight [${Math.floor(i / k)}, ${i % k}] of ${layer} is ${w[i]}; quantization needs finite weights — the model file is corrupt`);
    }
  }
  const wt = new Float32Array(k * n);
  for (let r0 = 0; r0 < n; r0 += TILE) {
    // A tile of rows at a time, so both the reads (along rows of W) and the writes (along rows of Wᵀ) stay in cache.
    const r1 = Math.min(r0 + TILE, n);
    for (let j = 0; j < k; j++) {
      const c = perm ? perm[j]! : j;
      const dst = j * n;
      for (let r = r0; r < r1; r++) wt[dst + r] = w[r * k + c]!;
    }
  }
  if (prep.dead.length) {
    const deadPos = perm ? inversePermutation(perm) : null;
    for (const c of prep.dead) {
      const j = deadPos ? deadPos[c]! : c;
      wt.fill(0, j * n, (j + 1) * n);
    }
  }

  const scales = new Float32Array(n * groups);
  const zeros = new Uint8Array(n * groups);
  const codesT = new Uint8Array(k * n); // processing order, transposed like wt
  // The current group's parameters per row, as the loop reads them.
  const curScale = new Float32Array(n);
  const curZero = new Uint8Array(n);
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  // Rows of Wᵀ from `tailStart` on, the columns not yet quantized (and the current block's): a
  // finished block's rows are never read again, so the lazy update's result replaces them without a copy.
  let tail = wt;
  let tailStart = 0;
  const column = (j: number) => tail.subarray((j - tailStart) * n, (j - tailStart + 1) * n);
  const setParams = (g: number, first: number, count: number) => {
    lo.fill(0);
    hi.fill(0);
    for (let j = first; j < first + count; j++) widenRange(column(j), lo, hi);
    for (let r = 0; r < n; r++) {
      const { s, z } = rtnGroupParams(lo[r]!, hi[r]!, spec.bits, spec.symmetric, true, opts.stats);
      curScale[r] = scales[r * groups + g] = roundToF16(s);
      curZero[r] = zeros[r * groups + g] = z;
    }
  };
  if (!grouped) setParams(0, 0, k);

  // Two levels of lazy updates. Inside a sub-block of `sub` columns, each column's error moves the
  // sub-block's later columns at once (rank-1 updates of contiguous rows, in JavaScript); a finished
  // sub-block moves the rest of its block in one Gemm, and a finished block the rest of the matrix,
  // as the reference's blocks do. The result is the same for any split (every column still sees all
  // earlier errors before it is quantized; only the order of the float sums changes), but the
  // O(n·block) JavaScript work per column shrinks to O(n·sub) — it was most of a layer's time.
  // A group's parameters need all earlier errors in all its columns: groups must then start on a
  // sub-block boundary or lie inside one.
  const sub = !grouped || gs % SUB_BLOCK === 0 || SUB_BLOCK % gs === 0 ? Math.min(SUB_BLOCK, block) : block;
  const err = new Float32Array(block * n); // the block's scaled errors, one row per column
  /** Wᵀ[t0:t1, :] −= U[c0:c1, t0:t1]ᵀ · Err[c0:c1, :] for columns c0..c1 of the block at i1, in one Gemm. */
  const spread = async (i1: number, c0: number, c1: number, t0: number, t1: number) => {
    const width = t1 - t0;
    const u = new Float32Array((c1 - c0) * width);
    for (let c = c0; c < c1; c++) u.set(hinv.subarray(c * k + t0, c * k + t1), (c - c0) * width);
    const at = (t0 - tailStart) * n;
    const updated = await opts.gemm.mulAdd(tail.subarray(at, at + width * n), u, err.subarray((c0 - i1) * n, (c1 - i1) * n), { m: width, k: c1 - c0, n, transA: true, alpha: -1 });
    if (t1 === k) {
      tail = updated;
      tailStart = t0;
    } else tail.set(updated, at);
  };
  let loss = 0;
  for (let i1 = 0; i1 < k; i1 += block) {
    const i2 = Math.min(i1 + block, k);
    for (let s0 = i1; s0 < i2; s0 += sub) {
      const s1 = Math.min(s0 + sub, i2);
      for (let col = s0; col < s1; col++) {
        if (grouped && col % gs === 0) setParams(col / gs, col, gs);
        const hrow = col * k;
        const d = hinv[hrow + col]!;
        const e = err.subarray((col - i1) * n, (col - i1 + 1) * n);
        loss += quantizeRow(column(col), curScale, curZero, maxq, d, codesT.subarray(col * n, (col + 1) * n), e) / (d * d) / 2;
        for (let j = col + 1; j < s1; j++) {
          const u = hinv[hrow + j]!;
          if (u !== 0) subtractScaled(column(j), e, u);
        }
      }
      if (s1 < i2) await spread(i1, s0, s1, s1, i2);
    }
    if (i2 < k) await spread(i1, i1, i2, i2, k);
  }

  const outCodes = new Uint8Array(n * k);
  for (let r0 = 0; r0 < n; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, n);
    for (let j = 0; j < k; j++) {
      const c = perm ? perm[j]! : j;
      const src = j * n;
      for (let r = r0; r < r1; r++) outCodes[r * k + c] = codesT[src + r]!;
    }
  }
  let groupIndex: Int32Array | undefined;
  if (perm && grouped) {
    groupIndex = new Int32Array(k);
    for (let j = 0; j < k; j++) groupIndex[perm[j]!] = Math.floor(j / gs);
  }
  const out: RtnLinear = { kind: "rtn", spec: { ...spec }, outFeatures: n, inFeatures: k, groupSize: gs, codes: outCodes, scales, zeros, bias: null };
  if (groupIndex) out.groupIndex = groupIndex;
  return { layer: out, loss, seconds: (performance.now() - started) / 1000 };
}

// The two hot loops, as small functions of their arrays: inside the async gptqQuantize, whose arrays
// are also closure variables, V8 compiled the same loops several times slower.

/** Codes of one column (its n values, contiguous) on the current grid; writes err = (w − q)/d and returns Σ (w − q)². */
function quantizeRow(w: Float32Array, scale: Float32Array, zero: Uint8Array, maxq: number, d: number, codes: Uint8Array, err: Float32Array): number {
  let sum = 0;
  for (let r = 0; r < w.length; r++) {
    const s = scale[r]!;
    const z = zero[r]!;
    const wv = w[r]!;
    const code = rtnCode(wv, s, z, maxq);
    codes[r] = code;
    const diff = wv - s * (code - z);
    sum += diff * diff;
    err[r] = diff / d;
  }
  return sum;
}

/** Widens the per-row ranges [lo, hi] by one column's values. */
function widenRange(values: Float32Array, lo: Float64Array, hi: Float64Array): void {
  for (let r = 0; r < values.length; r++) {
    const v = values[r]!;
    if (v < lo[r]!) lo[r] = v;
    if (v > hi[r]!) hi[r] = v;
  }
}

/** dst −= u · src: one rank-1 update of a later column by this column's error. */
function subtractScaled(dst: Float32Array, src: Float32Array, u: number): void {
  for (let r = 0; r < dst.length; r++) dst[r]! -= u * src[r]!;
}

export function inversePermutation(perm: Int32Array): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let j = 0; j < perm.length; j++) inv[perm[j]!] = j;
  return inv;
}
