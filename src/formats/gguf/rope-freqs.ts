// Llama 3's RoPE scaling in GGUF. llama.cpp has no hyperparameter keys for rope_type "llama3": its
// converter writes a tensor `rope_freqs.weight` of head_dim/2 float32 frequency factors, and its RoPE
// divides each pair's angle by its factor (θ_i = p · base^(−2i/D) / factor_i). So a factor is the
// plain inverse frequency over the scaled one: 1 where wavelengths are short, `factor` where they
// are long, and the blend in between. Reading a file back recovers parameters that give the same
// factors (the file cannot tell (orig, low, high) from a multiple of them, so low is taken as 1).

import type { Llama3RopeScaling, LlamaConfig } from "../../arch/llama/config.js";
import { ropeInvFreq } from "../../arch/llama/rope.js";

/** The GGUF tensor llama.cpp reads Llama 3's per-dimension RoPE frequency factors from. */
export const ROPE_FREQS_TENSOR = "rope_freqs.weight";

type RopeFields = Pick<LlamaConfig, "headDim" | "ropeTheta">;

/** 2π / inverse frequency of plain RoPE: each pair's wavelength in positions. */
function plainWavelengths(config: RopeFields): Float64Array {
  // Only the head size and base: a full config's own scaling must not reach these.
  return Float64Array.from(ropeInvFreq({ headDim: config.headDim, ropeTheta: config.ropeTheta }), (x) => (2 * Math.PI) / x);
}

/**
 * The head_dim/2 factors llama.cpp divides plain RoPE's angles by to compute Llama 3's scaled RoPE
 * (`rope_freqs.weight`): plain inverse frequency ÷ the scaled one, band by band.
 */
export function llama3RopeFreqFactors(config: RopeFields, s: Llama3RopeScaling): Float32Array {
  const longest = s.originalMaxPositions / s.lowFreqFactor;
  const shortest = s.originalMaxPositions / s.highFreqFactor;
  return Float32Array.from(plainWavelengths(config), (wavelength) => {
    if (wavelength < shortest) return 1;
    if (wavelength > longest) return s.factor;
    const smooth = (s.originalMaxPositions / wavelength - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

/** True when two factor tables agree to float32 rounding of the blend (relative 1e-5). */
function sameFactors(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) <= 1e-5 * Math.max(1, Math.abs(x)));
}

/**
 * Llama 3 scaling parameters that reproduce `factors` (a file's rope_freqs), or null when no
 * parameters of that form do. All ones is plain RoPE (undefined). The result is checked by
 * recomputing the factors from it.
 */
export function llama3ScalingFromFactors(config: RopeFields, factors: Float32Array): Llama3RopeScaling | undefined | null {
  if (factors.length !== config.headDim / 2 || !factors.every((f) => Number.isFinite(f) && f >= 1)) return null;
  const factor = Math.max(...factors);
  if (factor === 1) return undefined;
  const band = blendBand(plainWavelengths(config), factors, factor);
  if (!band || !(Number.isFinite(band.orig) && Number.isFinite(band.high) && band.orig >= 1 && band.high > 1)) return null;
  // config.json holds an integer original_max_position_embeddings; a round high_freq_factor is kept when it fits.
  const fitted: Llama3RopeScaling = { type: "llama3", factor, lowFreqFactor: 1, highFreqFactor: band.high, originalMaxPositions: Math.round(band.orig) };
  const tidy = { ...fitted, highFreqFactor: Math.round(band.high * 1e4) / 1e4 };
  for (const s of [tidy, fitted]) if (sameFactors(llama3RopeFreqFactors(config, s), factors)) return s;
  return null;
}

/**
 * original_max_position_embeddings and high_freq_factor of the blend, low_freq_factor taken as 1.
 * Then a blended pair's smooth value, recovered from its factor, is linear in 1/wavelength (slope
 * orig/(high−1), intercept −1/(high−1)), so two blended pairs give both. With fewer, Llama 3's
 * high_freq_factor 4 is assumed: one blended pair then gives orig; with none, orig is put between
 * the scaled wavelengths (which must exceed it) and high times the kept ones (which must stay below
 * orig/high), with a high below 4 when 4 leaves no room.
 */
function blendBand(wavelengths: Float64Array, factors: Float32Array, factor: number): { orig: number; high: number } | null {
  const near = (x: number, y: number) => Math.abs(x - y) <= 1e-5 * y;
  const kept = [...factors.keys()].filter((i) => near(factors[i]!, 1));
  const scaled = [...factors.keys()].filter((i) => near(factors[i]!, factor));
  const blended = [...factors.keys()].filter((i) => !kept.includes(i) && !scaled.includes(i));
  const smoothOf = (i: number) => (1 / factors[i]! - 1 / factor) / (1 - 1 / factor);
  if (blended.length >= 2) {
    const a = blended[0]!;
    const b = blended.at(-1)!;
    const slope = (smoothOf(a) - smoothOf(b)) / (1 / wavelengths[a]! - 1 / wavelengths[b]!);
    const high = 1 - 1 / (smoothOf(a) - slope / wavelengths[a]!);
    return { orig: slope * (high - 1), high };
  }
  if (blended.length === 1) return { orig: wavelengths[blended[0]!]! * (3 * smoothOf(blended[0]!) + 1), high: 4 };
  if (scaled.length === 0) return null;
  const longestKept = Math.max(0, ...kept.map((i) => wavelengths[i]!));
  const shortestScaled = Math.min(...scaled.map((i) => wavelengths[i]!));
  if (4 * longestKept < shortestScaled) return { orig: (4 * longestKept + shortestScaled) / 2, high: 4 };
  // Too close for a high_freq_factor of 4: a narrower band between them.
  const orig = (longestKept + shortestScaled) / 2;
  return { orig, high: Math.sqrt(orig / longestKept) };
}
