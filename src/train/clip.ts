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
