// ReALLM's vector quantizer for a residual matrix R [N, K] (types.ts ReallmSpec):
// 1. optionally permute columns inside each block so that correlated columns share a sub-vector;
// 2. scale each row's blocks of `blockSize` columns by their absmax — the scales themselves coded
//    in `scaleBits` bits against a float16 per-row maximum (rounded up, so no value exceeds ±1);
// 3. fit 2^codeBits centroids to the normalised d-dimensional sub-vectors with k-means on a random
//    sample of them (linalg/kmeans.ts trainCodebook), round them to float16 (as stored) and replace
//    every sub-vector by its nearest centroid.

import { SlimtuneError } from "../core/errors.js";
import { f16BitsToF32, f32ToF16Bits, roundToF16 } from "../core/f16.js";
import type { Rng } from "../core/rng.js";
import { type CentroidGrid, gridOverBox, gridSuits, nearestInGrid, nearestRun2 } from "./linalg/centroid-grid.js";
import { type Codebook, CodebookRefitter, type NearestCentroid } from "./linalg/kmeans.js";
import type { ReallmSpec } from "./types.js";

export type VqShape = Pick<ReallmSpec, "vqDim" | "codeBits" | "blockSize" | "scaleBits" | "permuted">;

export interface VqResult {
  vqCodes: Uint8Array;
  codebook: Float32Array;
  scaleCodes: Uint8Array;
  rowScales: Float32Array;
  perm: Int32Array | null;
  /** Q̂ [N, K] in original column order. */
  deq: Float32Array;
  /** ‖R − Q̂‖²_F. */
  error: number;
  kmeansIterations: number;
}

/** The smallest float16 value ≥ x (x ≥ 0). */
function f16Ceil(x: number): number {
  const r = roundToF16(x);
  if (r >= x) return r;
  return f16BitsToF32(f32ToF16Bits(r) + 1);
}

/** Checks a VQ shape against a [n, k] matrix; E_ARG saying what to change. */
export function checkVqShape(shape: VqShape, n: number, k: number, layer: string): void {
  const { vqDim: d, codeBits: c, blockSize: bs } = shape;
  if (![1, 2, 4, 8].includes(d)) throw new SlimtuneError("E_ARG", `--vq-dim ${d} is not supported; use 1, 2, 4 or 8 values per codebook entry (ReALLM's default is 2)`);
  if (!Number.isInteger(c) || c < 1 || c > 8) throw new SlimtuneError("E_ARG", `a codebook of 2^${c} entries is not supported; code bits must be 1…8 (at most 256 centroids)`);
  if (!Number.isInteger(bs) || bs % d !== 0 || k % bs !== 0 || bs > 256) {
    throw new SlimtuneError("E_ARG", `VQ block size ${bs} must divide the ${k} input columns of ${layer}, be a multiple of the sub-vector length ${d} and at most 256`);
  }
  const subVectors = (n * k) / d;
  if (1 << c > subVectors) {
    throw new SlimtuneError(
      "E_ARG",
      `a codebook of 2^${c} = ${1 << c} centroids is larger than the ${subVectors} sub-vectors of ${layer} to cluster; use at most ${Math.floor(Math.log2(subVectors))} code bits`,
    );
  }
  if (shape.scaleBits !== 8) throw new SlimtuneError("E_ARG", `block scales are stored as 8-bit codes; scale bits ${shape.scaleBits} is not supported`);
}

/**
 * A permutation of the columns within each block of `bs` that groups them into runs of `d` whose
 * values move together: greedily, each run starts at the unassigned column of largest norm and takes
 * the unassigned columns of largest mean |correlation| with the run so far.
 */
export function correlatedPermutation(r: Float32Array, n: number, k: number, bs: number, d: number): Int32Array {
  const perm = new Int32Array(k);
  const cols = new Float64Array(bs * n);
  for (let b = 0; b < k / bs; b++) {
    const c0 = b * bs;
    for (let j = 0; j < bs; j++) for (let i = 0; i < n; i++) cols[j * n + i] = r[i * k + c0 + j]!;
    const norm = new Float64Array(bs);
    for (let j = 0; j < bs; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += cols[j * n + i]! ** 2;
      norm[j] = Math.sqrt(s);
    }
    const corr = new Float64Array(bs * bs);
    for (let a = 0; a < bs; a++) {
      for (let c = a + 1; c < bs; c++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += cols[a * n + i]! * cols[c * n + i]!;
        const v = norm[a]! > 0 && norm[c]! > 0 ? Math.abs(s) / (norm[a]! * norm[c]!) : 0;
        corr[a * bs + c] = v;
        corr[c * bs + a] = v;
      }
    }
    const used = new Uint8Array(bs);
    let at = c0;
    for (let run = 0; run < bs / d; run++) {
      let first = -1;
      for (let j = 0; j < bs; j++) if (!used[j] && (first < 0 || norm[j]! > norm[first]!)) first = j;
      const members = [first];
      used[first] = 1;
      while (members.length < d) {
        let best = -1;
        let bestScore = -1;
        for (let j = 0; j < bs; j++) {
          if (used[j]) continue;
          let score = 0;
          for (const m of members) score += corr[m * bs + j]!;
          if (score > bestScore) {
            bestScore = score;
            best = j;
          }
        }
        members.push(best);
        used[best] = 1;
      }
      for (const m of members) perm[at++] = c0 + m;
    }
  }
  return perm;
}

export interface VqOptions {
  rng: Rng;
  nearest: NearestCentroid;
  /** Lloyd iterations at most. */
  iterations?: number;
  /** The codebook is fitted on at most this many sub-vectors per centroid (kmeans.ts trainCodebook). */
  pointsPerCentroid?: number;
  /** Warm start of the first codebook: one [2^codeBits, d] fitted to nearby points (VqRefitter's later residuals continue from their own last). */
  init?: Float32Array;
  layer?: string;
}

/** Vector-quantizes R [n, k] with `shape`. */
export async function vqQuantize(r: Float32Array, n: number, k: number, shape: VqShape, opts: VqOptions): Promise<VqResult> {
  return new VqRefitter(n, k, shape, opts).quantize(r);
}

/**
 * The vector quantizer of successive residuals of one [n, k] matrix (ReALLM's alternation, where the
 * residual moves a little each round): its buffers, the codebook's training sample and k-means state
 * (kmeans.ts CodebookRefitter) carry from one residual to the next. The first residual is coded as
 * vqQuantize codes it; each later one refits the codebook from the last one's (a warm start).
 */
export class VqRefitter {
  private readonly blocks: number;
  private readonly count: number;
  private readonly book: CodebookRefitter;
  private readonly scale: Float64Array;
  private readonly absmax: Float64Array;
  /** Every sub-vector normalised, for the shapes without a grid; the grid path needs only the sample's. */
  private points: Float32Array | null = null;
  private train: Float32Array | null = null;
  private readonly codes: Uint8Array;
  private readonly deq: Float32Array;
  private readonly layer: string;

  constructor(
    private readonly n: number,
    private readonly k: number,
    private readonly shape: VqShape,
    private readonly opts: VqOptions,
  ) {
    this.layer = opts.layer ?? "the layer";
    checkVqShape(shape, n, k, this.layer);
    this.blocks = k / shape.blockSize;
    this.count = (n * k) / shape.vqDim;
    this.book = new CodebookRefitter(this.count, shape.vqDim, 1 << shape.codeBits, { rng: opts.rng, iterations: opts.iterations ?? 30, ...(opts.pointsPerCentroid ? { pointsPerCentroid: opts.pointsPerCentroid } : {}) });
    this.scale = new Float64Array(n * this.blocks);
    this.absmax = new Float64Array(this.blocks);
    this.codes = new Uint8Array(this.count);
    this.deq = new Float32Array(n * k);
  }

  /** Codes R [n, k]. The result's `deq` is this quantizer's buffer, overwritten by the next call; the rest is the caller's. */
  async quantize(r: Float32Array): Promise<VqResult> {
    const { count } = this;
    const { vqDim: d, codeBits: c, blockSize: bs } = this.shape;
    const k = 1 << c;
    const perm = this.shape.permuted ? correlatedPermutation(r, this.n, this.k, bs, d) : null;
    const { scaleCodes, rowScales } = this.blockScales(r);
    // The codebook is fitted on a sample of the sub-vectors; every one is coded once, against the
    // float16 centroids a loader will see.
    let book: Codebook;
    let codebook: Float32Array;
    let error: number;
    if (gridSuits(count, d, k)) {
      // One pass codes and dequantizes every sub-vector, normalised on the fly and looked up in a
      // grid over [−1, 1]^d, where block normalisation puts every one (a value rounded just outside
      // is scanned): no buffer of normalised points, no pass to find their box.
      const train = this.gatherSample(r, perm);
      book = this.book.fitSample(train, this.opts.init);
      codebook = Float32Array.from(book.centroids, roundToF16);
      const grid = gridOverBox(train, this.book.trainedOn, d, codebook, k, -1, 1);
      error =
        d === 2 && !perm
          ? this.codeAndDequantize2(r, codebook, grid)
          : this.codeAndDequantize(r, perm, codebook, (x) => nearestInGrid(grid, codebook, x, 0));
    } else {
      const points = this.normalised(r, perm);
      book = this.book.fit(points, this.opts.init);
      codebook = Float32Array.from(book.centroids, roundToF16);
      await this.opts.nearest.assign(points, count, d, codebook, k, this.codes);
      error = this.codeAndDequantize(r, perm, codebook, null);
    }
    return { vqCodes: Uint8Array.from(this.codes), codebook, scaleCodes, rowScales, perm, deq: this.deq, error, kmeansIterations: book.iterations };
  }

  /** Value `p` of row `row`, block-normalised by `s` (float32, as a buffer of points holds it; 0 in an all-zero block). */
  private valueOf(r: Float32Array, perm: Int32Array | null, row: number, p: number, s: number): number {
    return s === 0 ? 0 : Math.fround(r[row * this.k + (perm ? perm[p]! : p)]! / s);
  }

  /** Every sub-vector block-normalised [count, d] (for the shapes without a grid). */
  private normalised(r: Float32Array, perm: Int32Array | null): Float32Array {
    const { n, k, blocks, scale } = this;
    const bs = this.shape.blockSize;
    const points = (this.points ??= new Float32Array(n * k));
    for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) points[i * k + p] = this.valueOf(r, perm, i, p, scale[i * blocks + Math.floor(p / bs)]!);
    return points;
  }

  /** The codebook's training sample (CodebookRefitter.sample's sub-vectors), block-normalised [trainedOn, d]. */
  private gatherSample(r: Float32Array, perm: Int32Array | null): Float32Array {
    const { k, blocks, scale } = this;
    const { vqDim: d, blockSize: bs } = this.shape;
    const indices = this.book.sample();
    const size = this.book.trainedOn;
    const out = (this.train ??= new Float32Array(size * d));
    for (let i = 0; i < size; i++) {
      const at = (indices ? indices[i]! : i) * d;
      const row = Math.floor(at / k);
      const p = at - row * k;
      const s = scale[row * blocks + Math.floor(p / bs)]!;
      for (let t = 0; t < d; t++) out[i * d + t] = this.valueOf(r, perm, row, p + t, s);
    }
    return out;
  }

  /**
   * One pass over the sub-vectors: each one's code from `nearest` (given the sub-vector
   * block-normalised; null: `codes` already hold them), then Q̂ = its scale × its centroid into
   * `deq`. Returns ‖R − Q̂‖²_F.
   */
  private codeAndDequantize(r: Float32Array, perm: Int32Array | null, codebook: Float32Array, nearest: ((x: Float32Array) => number) | null): number {
    const { n, k, blocks, scale, codes, deq } = this;
    const { vqDim: d, blockSize: bs } = this.shape;
    const x = new Float32Array(d);
    let error = 0;
    for (let i = 0; i < n; i++) {
      const row = i * k;
      for (let b = 0; b < blocks; b++) {
        const s = scale[i * blocks + b]!;
        for (let p = b * bs; p < (b + 1) * bs; p += d) {
          const q = (row + p) / d;
          if (nearest) {
            for (let t = 0; t < d; t++) x[t] = this.valueOf(r, perm, i, p + t, s);
            codes[q] = nearest(x);
          }
          const cc = codes[q]! * d;
          for (let t = 0; t < d; t++) {
            const j = row + (perm ? perm[p + t]! : p + t);
            const v = s * codebook[cc + t]!;
            deq[j] = v;
            error += (r[j]! - v) ** 2;
          }
        }
      }
    }
    return error;
  }
  /** codeAndDequantize for d = 2 without a permutation (ReALLM's default), through `grid`: the same codes and values, block by block. */
  private codeAndDequantize2(r: Float32Array, codebook: Float32Array, grid: CentroidGrid): number {
    const { n, k, blocks, scale, codes, deq } = this;
    const bs = this.shape.blockSize;
    let error = 0;
    for (let i = 0; i < n; i++) {
      const row = i * k;
      for (let b = 0; b < blocks; b++) {
        const s = scale[i * blocks + b]!;
        const from = row + b * bs;
        nearestRun2(grid, codebook, r, from, from + bs, s, codes, from / 2);
        for (let j = from, end = from + bs; j < end; j += 2) {
          const code = codes[j / 2]!;
          const v0 = s * codebook[2 * code]!;
          const v1 = s * codebook[2 * code + 1]!;
          deq[j] = v0;
          deq[j + 1] = v1;
          error += (r[j]! - v0) ** 2;
          error += (r[j + 1]! - v1) ** 2;
        }
      }
    }
    return error;
  }

  /**
   * Each row's blocks scaled by their absmax: the scales coded in `scaleBits` bits against a float16
   * per-row maximum (rounded up, so no value exceeds ±1), into `this.scale` as the values they code.
   */
  private blockScales(r: Float32Array): { scaleCodes: Uint8Array; rowScales: Float32Array } {
    const { n, k, blocks, scale, absmax, layer } = this;
    const bs = this.shape.blockSize;
    const maxCode = (1 << this.shape.scaleBits) - 1;
    const scaleCodes = new Uint8Array(n * blocks);
    const rowScales = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let rowMax = 0;
      for (let b = 0; b < blocks; b++) {
        let m = 0;
        for (let j = i * k + b * bs, end = j + bs; j < end; j++) {
          const v = Math.abs(r[j]!);
          if (!(v <= m)) {
            if (!Number.isFinite(v)) throw new SlimtuneError("E_ARG", `value [${i}, ${j - i * k}] of ${layer} is not finite; the weights are corrupt`);
            m = v;
          }
        }
        absmax[b] = m;
        if (m > rowMax) rowMax = m;
      }
      const rs = f16Ceil(rowMax);
      rowScales[i] = rs;
      for (let b = 0; b < blocks; b++) {
        const code = rs === 0 ? 0 : Math.min(maxCode, Math.ceil((absmax[b]! / rs) * maxCode));
        scaleCodes[i * blocks + b] = code;
        scale[i * blocks + b] = (code / maxCode) * rs;
      }
    }
    return { scaleCodes, rowScales };
  }
}
