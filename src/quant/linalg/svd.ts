// Rank-r truncated SVD of a weight-sized matrix by randomized range finding (Halko, Martinsson and
// Tropp 2011, algorithms 4.4 and 5.1): Y = A·Ω with r + p Gaussian columns, q power iterations
// (re-orthonormalised each time), Q = orth(Y), B = QᵀA, and the SVD of the small B.
//
// Split of the work: the products with A (m·n·l multiply-adds each) run through ORT's Gemm
// (HostGemm, float64); orthonormalisation is Gram–Schmidt applied twice (m·l² each, exact enough
// after power iterations); the small l × l problem is ml-matrix's symmetric eigendecomposition of
// B·Bᵀ. ml-matrix's own SVD of the whole matrix took 17 s at 1536 × 576 on this machine, against
// well under a second here for r = 64.

import { EigenvalueDecomposition, Matrix } from "ml-matrix";
import type { Rng } from "../../core/rng.js";
import type { GemmShape, HostGemm } from "./host-gemm.js";

export interface TruncatedSvd {
  rank: number;
  /** Left singular vectors U [m, r], row-major. */
  u: Float64Array;
  /** Singular values, descending [r]. */
  s: Float64Array;
  /** Right singular vectors as rows Vᵀ [r, n], row-major. */
  vt: Float64Array;
}

export interface SvdOptions {
  gemm: HostGemm;
  rng: Rng;
  /** Extra random columns beyond the rank (default 10). */
  oversample?: number;
  /** Power iterations (default 2); each sharpens the spectrum's decay. */
  powerIterations?: number;
  /**
   * Rows [s, n] spanning a guess of the leading right singular subspace (a nearby matrix's Vᵀ):
   * the first s columns of Ω, the rest Gaussian. Subspace iteration from a good guess needs fewer
   * power iterations than from a random start.
   */
  start?: Float64Array;
}

/** Orthonormalises the l rows of `rows` [l, m] in place (classical Gram–Schmidt, twice); returns the row count kept. */
function orthonormalRows(rows: Float64Array, l: number, m: number): void {
  for (let pass = 0; pass < 2; pass++) {
    for (let i = 0; i < l; i++) {
      const ri = i * m;
      for (let j = 0; j < i; j++) {
        const rj = j * m;
        let dot = 0;
        for (let k = 0; k < m; k++) dot += rows[ri + k]! * rows[rj + k]!;
        for (let k = 0; k < m; k++) rows[ri + k]! -= dot * rows[rj + k]!;
      }
      let norm = 0;
      for (let k = 0; k < m; k++) norm += rows[ri + k]! ** 2;
      norm = Math.sqrt(norm);
      // A column of Y that lies in the span of the earlier ones (rank-deficient A) becomes zero.
      const inv = norm > 1e-300 ? 1 / norm : 0;
      for (let k = 0; k < m; k++) rows[ri + k]! *= inv;
    }
  }
}

function transposed(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** `x` in A's precision, for a Gemm with A (HostGemm multiplies two arrays of one type). */
function like(a: Float32Array | Float64Array, x: Float64Array): Float32Array | Float64Array {
  return a instanceof Float32Array ? Float32Array.from(x) : x;
}

/** A product's result as float64, for the host's orthonormalisation. */
function wide(x: Float32Array | Float64Array): Float64Array {
  return x instanceof Float64Array ? x : Float64Array.from(x);
}

/**
 * The best rank-`rank` approximation's factors of A [m, n] (row-major). The products with A run in
 * A's precision: a float32 A (float32 weights) halves their cost and the copy; everything else,
 * the orthonormalisation included, is float64.
 */
export async function truncatedSvd(a: Float32Array | Float64Array, m: number, n: number, rank: number, opts: SvdOptions): Promise<TruncatedSvd> {
  const r = Math.min(rank, m, n);
  if (r <= 0) return { rank: 0, u: new Float64Array(0), s: new Float64Array(0), vt: new Float64Array(0) };
  const l = Math.min(r + (opts.oversample ?? 10), m, n);
  const omega = new Float64Array(n * l);
  const guessed = opts.start ? Math.min(l, opts.start.length / n) : 0;
  // Gaussian where there is no guess (in index order: without one, every entry as before).
  for (let c = 0; c < n; c++) for (let j = guessed; j < l; j++) omega[c * l + j] = opts.rng.normal();
  for (let j = 0; j < guessed; j++) for (let c = 0; c < n; c++) omega[c * l + j] = opts.start![j * n + c]!;
  // Y = A·Ω [m, l]; kept as rows Yᵀ [l, m] for contiguous Gram–Schmidt.
  const mulA = async (x: Float64Array, shape: GemmShape, aFirst: boolean): Promise<Float64Array> => wide(aFirst ? await opts.gemm.mul(a, like(a, x), shape) : await opts.gemm.mul(like(a, x), a, shape));
  let qt = transposed(await mulA(omega, { m, k: n, n: l }, true), m, l);
  orthonormalRows(qt, l, m);
  for (let it = 0; it < (opts.powerIterations ?? 2); it++) {
    // Z = Aᵀ·Q [n, l] = (Qᵀ·A)ᵀ, then Y = A·orth(Z).
    const zt = await mulA(qt, { m: l, k: m, n }, false); // Qᵀ·A = Zᵀ [l, n]
    orthonormalRows(zt, l, n);
    qt = transposed(await mulA(zt, { m, k: n, n: l, transB: true }, true), m, l);
    orthonormalRows(qt, l, m);
  }
  const b = await mulA(qt, { m: l, k: m, n }, false); // B = QᵀA [l, n]
  const bbt = await opts.gemm.mul(b, b, { m: l, k: n, n: l, transB: true }); // [l, l]
  const rowsOf = (x: Float64Array, cols: number) => Array.from({ length: x.length / cols }, (_, i) => Array.from(x.subarray(i * cols, (i + 1) * cols)));
  const evd = new EigenvalueDecomposition(new Matrix(rowsOf(bbt, l)), { assumeSymmetric: true });
  const values = evd.realEigenvalues;
  const vectors = evd.eigenvectorMatrix;
  const order = values.map((v, i) => [v, i] as const).sort((x, y) => y[0] - x[0]).map(([, i]) => i);
  const s = new Float64Array(r);
  const ub = new Float64Array(l * r); // eigenvectors of B·Bᵀ, the top r as columns
  for (let j = 0; j < r; j++) {
    const idx = order[j]!;
    s[j] = Math.sqrt(Math.max(0, values[idx]!));
    for (let i = 0; i < l; i++) ub[i * r + j] = vectors.get(i, idx);
  }
  // U = Q·U_b [m, r]; Vᵀ = Σ⁻¹·U_bᵀ·B [r, n].
  const u = await opts.gemm.mul(qt, ub, { m, k: l, n: r, transA: true });
  const vt = await opts.gemm.mul(ub, b, { m: r, k: l, n, transA: true });
  for (let j = 0; j < r; j++) {
    const inv = s[j]! > 1e-300 ? 1 / s[j]! : 0;
    for (let c = 0; c < n; c++) vt[j * n + c]! *= inv;
  }
  return { rank: r, u, s, vt };
}
