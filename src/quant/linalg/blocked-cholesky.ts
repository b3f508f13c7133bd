// Blocked versions of cholesky.ts's factorizations for Hessians of real widths (K = 1536 at the
// SmolLM2 MLP, 4864 at Qwen2.5-0.5B): the O(K³) work moves into ONNX Runtime float64 Gemms over
// panels of `block` columns, and only O(K·block²) stays in JavaScript (the small diagonal blocks).
// The flat loops of cholesky.ts needed ~9.5 s for chol(H⁻¹) at K = 1536 on the shared 2-core
// machine; they stay the reference (and the path for widths of one block or less).
//
// Left-looking Cholesky (each block column receives all earlier columns' contributions in one
// product, then factors its diagonal block and solves its panel with that block's inverse), and a
// row-blocked triangular inverse (each block row of R⁻¹ from the rows above in one product).

import { choleskyLowerInPlace, invertLower } from "./cholesky.js";

/** C = op(A)·op(B) on host arrays; HostGemm.mul fits. */
export interface Float64Gemm {
  mul(a: Float64Array, b: Float64Array, s: { m: number; k: number; n: number; transA?: boolean; transB?: boolean }): Promise<Float64Array>;
}

/** Rows r0..r1, columns c0..c1 of the row-major [·, n] matrix a, as a dense [r1 − r0, c1 − c0] copy. */
function slice(a: Float64Array, n: number, r0: number, r1: number, c0: number, c1: number): Float64Array {
  const w = c1 - c0;
  const out = new Float64Array((r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Writes the dense [·, w] block `b` into a [·, n] at (r0, c0). */
function place(a: Float64Array, n: number, r0: number, c0: number, b: Float64Array, w: number): void {
  for (let r = 0; r < b.length / w; r++) a.set(b.subarray(r * w, (r + 1) * w), (r0 + r) * n + c0);
}

/**
 * In-place lower Cholesky factor of the symmetric `a` [n, n] (its lower triangle is read; the upper
 * triangle ends at 0), block columns of `block`. False when `a` is not positive definite.
 */
export async function choleskyLowerBlocked(a: Float64Array, n: number, gemm: Float64Gemm, block = 128): Promise<boolean> {
  if (n <= block) return choleskyLowerInPlace(a, n);
  for (let j0 = 0; j0 < n; j0 += block) {
    const j1 = Math.min(j0 + block, n);
    const b = j1 - j0;
    const m = n - j0;
    if (j0 > 0) {
      // A[j0:, j0:j1] −= L[j0:, :j0] · L[j0:j1, :j0]ᵀ: every earlier column's contribution at once.
      const left = slice(a, n, j0, n, 0, j0);
      const top = left.subarray(0, b * j0);
      const c = await gemm.mul(left, top, { m, k: j0, n: b, transB: true });
      for (let r = 0; r < m; r++) {
        const at = (j0 + r) * n + j0;
        for (let q = 0; q < b; q++) a[at + q]! -= c[r * b + q]!;
      }
    }
    const diag = slice(a, n, j0, j1, j0, j1);
    if (!choleskyLowerInPlace(diag, b)) return false;
    place(a, n, j0, j0, diag, b);
    if (j1 < n) {
      // L[j1:, j0:j1] = A[j1:, j0:j1] · L₁₁⁻ᵀ
      const panel = slice(a, n, j1, n, j0, j1);
      const solved = await gemm.mul(panel, invertLower(diag, b), { m: n - j1, k: b, n: b, transB: true });
      place(a, n, j1, j0, solved, b);
    }
  }
  for (let i = 0; i < n; i++) a.fill(0, i * n + i + 1, (i + 1) * n);
  return true;
}

/** L⁻¹ of a lower-triangular `l` [n, n] with a positive diagonal, by block rows of `block`. */
export async function invertLowerBlocked(l: Float64Array, n: number, gemm: Float64Gemm, block = 128): Promise<Float64Array> {
  if (n <= block) return invertLower(l, n);
  const x = new Float64Array(n * n);
  for (let i0 = 0; i0 < n; i0 += block) {
    const i1 = Math.min(i0 + block, n);
    const b = i1 - i0;
    const diagInv = invertLower(slice(l, n, i0, i1, i0, i1), b);
    place(x, n, i0, i0, diagInv, b);
    if (i0 === 0) continue;
    // X[i0:i1, :i0] = −L_ii⁻¹ · (L[i0:i1, :i0] · X[:i0, :i0])
    const t = await gemm.mul(slice(l, n, i0, i1, 0, i0), slice(x, n, 0, i0, 0, i0), { m: b, k: i0, n: i0 });
    const row = await gemm.mul(diagInv, t, { m: b, k: b, n: i0 });
    for (let r = 0; r < b; r++) {
      const at = (i0 + r) * n;
      for (let q = 0; q < i0; q++) x[at + q] = -row[r * i0 + q]!;
    }
  }
  return x;
}

/**
 * The upper-triangular U with H⁻¹ = Uᵀ·U (cholesky.ts upperCholeskyOfInverse: U = J·R⁻¹·J with
 * JHJ = R·Rᵀ), blocked. Returns null when H is not positive definite.
 */
export async function upperCholeskyOfInverseBlocked(h: Float64Array, n: number, gemm: Float64Gemm, block = 128): Promise<Float64Array | null> {
  const flipped = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n;
    const dst = i * n;
    for (let j = 0; j <= i; j++) flipped[dst + j] = h[src + (n - 1 - j)]!;
  }
  if (!(await choleskyLowerBlocked(flipped, n, gemm, block))) return null;
  const rInv = await invertLowerBlocked(flipped, n, gemm, block);
  const u = flipped; // reused: R is no longer needed
  u.fill(0);
  for (let i = 0; i < n; i++) {
    const dst = i * n;
    const src = (n - 1 - i) * n;
    for (let j = i; j < n; j++) u[dst + j] = rInv[src + (n - 1 - j)]!;
  }
  return u;
}
