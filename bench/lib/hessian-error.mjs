// ‖(W − Q)X‖ / ‖WX‖ through H ∝ XᵀX (float64): the output error a quantizer leaves, the figure
// bench/quantize.mjs reports per layer and bench/kmeans-seeds.mjs per seed.

/** `gemm` is a src/quant/linalg HostGemm; w, q: [n, k] float32; h: [k, k] float64. */
export async function relativeError(gemm, w, q, h, n, k) {
  const d = new Float64Array(n * k);
  const w64 = Float64Array.from(w);
  for (let i = 0; i < d.length; i++) d[i] = w[i] - q[i];
  const dh = await gemm.mul(d, h, { m: n, k, n: k });
  const wh = await gemm.mul(w64, h, { m: n, k, n: k });
  let num = 0;
  let den = 0;
  for (let i = 0; i < d.length; i++) {
    num += d[i] * dh[i];
    den += w64[i] * wh[i];
  }
  return Math.sqrt(num / den);
}
