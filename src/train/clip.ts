// Global L2 norm of all gradients and in-place clipping to a maximum norm.

/** L2 norm over every value of every array, summed in float64 so 10^8 float32 squares keep precision. */
export function globalNorm(grads: Iterable<Float32Array>): number {
  let sum = 0;
  for (const g of grads) {
    const n = g.length;
    for (let i = 0; i < n; i++) {
      const x = g[i]!;
      sum += x * x;
    }
  }
  return Math.sqrt(sum);
}

/**
 * Scales every gradient by maxNorm / (norm + 1e-6) (PyTorch's clip_grad_norm_) when the norm exceeds
 * maxNorm; maxNorm <= 0 disables clipping. Returns the pre-clip norm. A non-finite norm is returned
 * without scaling, because scaling by 0 or NaN would hide which gradients blew up; the caller skips the step.
 */
export function clipByGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  const norm = globalNorm(grads.values());
  if (maxNorm <= 0 || !Number.isFinite(norm) || norm <= maxNorm) return norm;
  const scale = maxNorm / (norm + 1e-6);
  for (const g of grads.values()) {
    const n = g.length;
    for (let i = 0; i < n; i++) g[i] = g[i]! * scale;
  }
  return norm;
}
