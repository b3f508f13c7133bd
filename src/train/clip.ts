// Global L2 norm of all gradients and in-place clipping to a maximum norm.

/** L2 norm over every value of every array, summed in float64 so 10^8 float32 squares keep precision. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let sum = 0;
  for (const g of grads) sum += sumOfSquares(g);
  return Math.sqrt(sum);
}

/**
 * Σ x² of one array in four independent float64 sums: one sum is a chain of dependent additions
 * (one add latency per value); four let the CPU overlap them (bench/adamw-loop.mjs).
 */
function sumOfSquares(g: Float32Array): number {
  const n = g.length;
  const n4 = n - (n % 4);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  for (let i = 0; i < n4; i += 4) {
    const a = g[i]!;
    const b = g[i + 1]!;
    const c = g[i + 2]!;
    const d = g[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (let i = n4; i < n; i++) s0 += g[i]! * g[i]!;
  return s0 + s1 + s2 + s3;
}

/**
 * The factor PyTorch's clip_grad_norm_ scales every gradient by: maxNorm / (norm + 1e-6) when the
 * norm exceeds maxNorm, else 1; maxNorm <= 0 disables clipping. A non-finite norm gives 1, because
 * scaling by 0 or NaN would hide which gradients blew up; the caller skips that step.
 */
export function clipScale(norm: number, maxNorm: number): number {
  if (maxNorm <= 0 || !Number.isFinite(norm) || norm <= maxNorm) return 1;
  return maxNorm / (norm + 1e-6);
}

/**
 * Scales every gradient in place by clipScale; returns the pre-clip norm. The training loop does
 * not call this: it hands the factor to AdamW.step, which applies it while it reads each gradient
 * anyway, saving a pass that reads and writes every gradient.
 */
export function clipByGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  const norm = globalNorm(grads.values());
  const scale = clipScale(norm, maxNorm);
  if (scale === 1) return norm;
  for (const g of grads.values()) {
    const n = g.length;
    for (let i = 0; i < n; i++) g[i] = g[i]! * scale;
  }
  return norm;
}
