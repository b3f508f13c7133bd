// Rotary embedding frequencies of the LLaMA family: plain RoPE, inv_freq[i] = θ^(−2i/D), and Llama 3's
// frequency scaling (rope_type "llama3"), as transformers' _compute_llama3_parameters computes it in
// float32: wavelengths longer than original_max_position_embeddings / low_freq_factor are slowed by
// `factor`, those shorter than … / high_freq_factor are kept, and the band between is blended.

import type { LlamaConfig } from "./config.js";

const f = Math.fround;

/** The D/2 inverse frequencies of the config's RoPE, float32 as transformers computes them. */
export function ropeInvFreq(config: Pick<LlamaConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float32Array {
  const D = config.headDim;
  const inv = Float32Array.from({ length: D / 2 }, (_, i) => f(1 / f(Math.pow(config.ropeTheta, f(f(2 * i) / D)))));
  const s = config.ropeScaling;
  if (!s) return inv;
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return inv.map((x) => {
    // PyTorch rounds the Python scalar 2π to the tensor's float32 before dividing.
    const wavelen = f(f(2 * Math.PI) / x);
    const scaled = wavelen > lowWavelen ? f(x / s.factor) : x;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f(f(f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
    return f(f(f(f(1 - smooth) * scaled) / s.factor) + f(smooth * scaled));
  });
}
