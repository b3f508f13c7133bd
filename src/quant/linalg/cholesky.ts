// Dense symmetric positive-definite algebra on row-major Float64Array matrices: Cholesky, the inverse
// of a triangular factor, and the upper Cholesky factor of H⁻¹ that GPTQ walks column by column.
//
// Written here rather than taken from ml-matrix (which slimtune uses for small SVD/QR work): on this
// machine ml-matrix needed 3.8 s for the Cholesky of a 1536 × 1536 Hessian and 61 s to invert it
// through `solve(I)`, against ~1.5 s and ~1 s for the flat loops below, whose inner loops run over
// contiguous rows. K³/3 multiply-adds in total for chol(H⁻¹), at the SmolLM2 widths (576, 1536).

import { SlimtuneError } from "../../core/errors.js";

/**
 * In-place lower Cholesky factor of the symmetric `a` [n, n] (only its lower triangle is read):
 * a = L·Lᵀ, the upper triangle set to 0. Returns false when `a` is not positive definite.
 */
export function choleskyLowerInPlace(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let d = a[rj + j]!;
    for (let k = 0; k < j; k++) d -= a[rj + k]! * a[rj + k]!;
    if (!(d > 0) || !Number.isFinite(d)) return false;
    d = Math.sqrt(d);
    a[rj + j] = d;
    const inv = 1 / d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = a[ri + j]!;
      for (let k = 0; k < j; k++) s -= a[ri + k]! * a[rj + k]!;
      a[ri + j] = s * inv;
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
  return true;
}

/** L⁻¹ of a lower-triangular `l` [n, n] with a positive diagonal, row by row (X[i,:] = (eᵢ − Σ_{k<i} L[i,k]·X[k,:]) / L[i,i]). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let k = 0; k < i; k++) {
      const c = l[ri + k]!;
      if (c === 0) continue;
      const rk = k * n;
      // X[k, :] is zero beyond column k (X is lower triangular).
      for (let j = 0; j <= k; j++) x[ri + j]! -= c * x[rk + j]!;
    }
    const inv = 1 / l[ri + i]!;
    for (let j = 0; j < i; j++) x[ri + j]! *= inv;
    x[ri + i] = inv;
  }
  return x;
}

/**
 * The upper-triangular U with H⁻¹ = Uᵀ·U, for a symmetric positive-definite H [n, n] — what the GPTQ
 * reference gets from cholesky → cholesky_inverse → cholesky(upper), in two O(n³/6) steps instead of
 * three: with J the exchange matrix (index reversal), JHJ = R·Rᵀ (R lower) gives H⁻¹ = J R⁻ᵀ R⁻¹ J, so
 * U = J·R⁻¹·J, i.e. U[i, j] = R⁻¹[n−1−i, n−1−j]. Returns null when H is not positive definite.
 */
export function upperCholeskyOfInverse(h: Float64Array, n: number): Float64Array | null {
  const flipped = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n;
    const dst = i * n;
    for (let j = 0; j <= i; j++) flipped[dst + j] = h[src + (n - 1 - j)]!;
  }
  if (!choleskyLowerInPlace(flipped, n)) return null;
  const rInv = invertLower(flipped, n);
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const dst = i * n;
    const src = (n - 1 - i) * n;
    for (let j = i; j < n; j++) u[dst + j] = rInv[src + (n - 1 - j)]!;
  }
  return u;
}

/** Checks that `h` is a finite [n, n] matrix before any factorisation. */
export function checkSquare(h: Float64Array, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || h.length !== n * n) {
    throw new SlimtuneError("E_SHAPE", `${what} has ${h.length} values; a [${n}, ${n}] matrix needs ${n * n}`);
  }
  for (let i = 0; i < h.length; i++) {
    if (!Number.isFinite(h[i]!)) {
      throw new SlimtuneError("E_ARG", `${what} holds ${h[i]} at [${Math.floor(i / n)}, ${i % n}]; the calibration activations overflowed or are corrupt — check the model and the calibration text`);
    }
  }
}
