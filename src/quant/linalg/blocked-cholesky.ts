// The factorization GPTQ needs, U = chol((H + λI)⁻¹) (upper), for Hessians of real widths (K = 1536
// at the SmolLM2 MLP, 4864 at Qwen2.5-0.5B), with its O(K³) work in ONNX Runtime Gemms.
//
// Recursive halving: for A = [[A₁₁, ·], [A₂₁, A₂₂]] = L·Lᵀ,
//   L₁₁⁻¹ = rec(A₁₁);  L₂₁ = A₂₁·L₁₁⁻ᵀ;  S = A₂₂ − L₂₁·L₂₁ᵀ;  L₂₂⁻¹ = rec(S);  (L⁻¹)₂₁ = −L₂₂⁻¹·L₂₁·L₁₁⁻¹,
// so the Cholesky factor and its inverse come out together from four large products per level, and
// only diagonal blocks of `block` or fewer run in JavaScript (cholesky.ts, float64). The earlier
// left-looking version made one product per block of 128 but copied an O(K²) panel out of the
// row-major matrix for each, O(K³/128) copies in all: at K = 4864 those copies took longer than its
// float64 products. Halving copies O(K² log K) and makes ~4/3·K³ flops — what LAPACK's
// potrf + potri + potrf, the reference's cholesky → cholesky_inverse → cholesky, make too.
//
// Precision: float32 products by default, as the reference's torch float32 factorizations (and at
// two to four times the speed of ORT's float64 Gemm here); float64 on request, for checks against
// the flat loops.

import type { GemmArray, GemmShape } from "./host-gemm.js";
import { choleskyLowerInPlace, invertLower } from "./cholesky.js";

export type FactorPrecision = "float32" | "float64";

/** C = op(A)·op(B) and C − op(A)·op(B) on host arrays; HostGemm fits. */
export interface FactorGemm {
  mul<T extends GemmArray>(a: T, b: T, s: GemmShape): Promise<T>;
  mulSub<T extends GemmArray>(c: T, a: T, b: T, s: GemmShape): Promise<T>;
}

function allocLike<T extends GemmArray>(like: T, length: number): T {
  return (like instanceof Float64Array ? new Float64Array(length) : new Float32Array(length)) as T;
}

/** Rows r0..r1, columns c0..c1 of the row-major [·, n] matrix a, as a dense [r1 − r0, c1 − c0] copy. */
function slice<T extends GemmArray>(a: T, n: number, r0: number, r1: number, c0: number, c1: number): T {
  const w = c1 - c0;
  const out = allocLike(a, (r1 - r0) * w);
  for (let r = r0; r < r1; r++) out.set(a.subarray(r * n + c0, r * n + c1), (r - r0) * w);
  return out;
}

/** Writes the dense [·, w] block `b` into a [·, n] at (r0, c0). */
function place(a: GemmArray, n: number, r0: number, c0: number, b: GemmArray, w: number): void {
  const rows = b.length / w;
  for (let r = 0; r < rows; r++) a.set(b.subarray(r * w, (r + 1) * w), (r0 + r) * n + c0);
}

/** The flat float64 loops of cholesky.ts on a block of `block` or fewer. */
function baseCase<T extends GemmArray>(a: T, n: number): T | null {
  const a64 = Float64Array.from(a);
  if (!choleskyLowerInPlace(a64, n)) return null;
  const inv = invertLower(a64, n);
  if (a instanceof Float64Array) return inv as T;
  return Float32Array.from(inv) as T;
}

/**
 * L⁻¹ for the lower Cholesky factor L of the symmetric `a` [n, n] (a = L·Lᵀ; only its lower
 * triangle is read, and `a` is not modified), in a's precision. Null when `a` is not positive
 * definite.
 */
export async function inverseCholeskyFactor<T extends GemmArray>(a: T, n: number, gemm: FactorGemm, block = 128): Promise<T | null> {
  if (n <= block) return baseCase(a, n);
  // The split falls on a block boundary, so every base case is a whole block but possibly the last.
  const n1 = block * Math.ceil(Math.ceil(n / block) / 2);
  const n2 = n - n1;
  const li11 = await inverseCholeskyFactor(slice(a, n, 0, n1, 0, n1), n1, gemm, block);
  if (!li11) return null;
  const l21 = await gemm.mul(slice(a, n, n1, n, 0, n1), li11, { m: n2, k: n1, n: n1, transB: true });
  const schur = await gemm.mulSub(slice(a, n, n1, n, n1, n), l21, l21, { m: n2, k: n1, n: n2, transB: true });
  const li22 = await inverseCholeskyFactor(schur, n2, gemm, block);
  if (!li22) return null;
  const t = await gemm.mul(l21, li11, { m: n2, k: n1, n: n1 });
  const x21 = await gemm.mul(li22, t, { m: n2, k: n2, n: n1, alpha: -1 });
  const out = allocLike(a, n * n);
  place(out, n, 0, 0, li11, n1);
  place(out, n, n1, 0, x21, n1);
  place(out, n, n1, n1, li22, n2);
  return out;
}

/**
 * The upper-triangular U with H⁻¹ = Uᵀ·U (cholesky.ts upperCholeskyOfInverse: U = J·R⁻¹·J with
 * JHJ = R·Rᵀ, J the index reversal), in `precision`. `diagonal` replaces H's diagonal (GPTQ's
 * dampening), so H itself is neither copied nor written. Null when H is not positive definite.
 */
export async function upperCholeskyOfInverseBlocked(
  h: Float64Array,
  n: number,
  gemm: FactorGemm,
  opts: { block?: number; precision?: FactorPrecision; diagonal?: Float64Array } = {},
): Promise<Float32Array | Float64Array | null> {
  const flipped = opts.precision === "float64" ? new Float64Array(n * n) : new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n + (n - 1);
    const dst = i * n;
    for (let j = 0; j <= i; j++) flipped[dst + j] = h[src - j]!;
    if (opts.diagonal) flipped[dst + i] = opts.diagonal[n - 1 - i]!;
  }
  const rInv = await inverseCholeskyFactor(flipped, n, gemm, opts.block ?? 128);
  if (!rInv) return null;
  const u = flipped; // reused: the flipped H is no longer needed
  u.fill(0);
  for (let i = 0; i < n; i++) {
    const dst = i * n;
    const src = (n - 1 - i) * n + (n - 1);
    for (let j = i; j < n; j++) u[dst + j] = rInv[src - j]!;
  }
  return u;
}
