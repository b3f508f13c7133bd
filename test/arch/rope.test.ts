// Llama 3's RoPE frequency scaling against values transformers' formula gives (computed with PyTorch
// 1.13 in float32, transformers' _compute_llama3_parameters), and its reading from config.json.

import path from "node:path";
import { describe, expect, it } from "vitest";
import { ropeInvFreq } from "../../src/arch/llama/rope.js";
import { parseLlamaConfig, readLlamaConfig } from "../../src/formats/hf-config.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { SHARED } from "../helpers/paths.js";

// Llama-3.2-1B: θ = 500000, head_dim 64, factor 32, low 1, high 4, original context 8192.
const llama32 = [
  1.0, 0.663601279258728, 0.44036662578582764, 0.2922278344631195, 0.193922758102417, 0.12868738174438477, 0.08539710193872452,
  0.05666961893439293, 0.03760603070259094, 0.02495540864765644, 0.016560440883040428, 0.010989529080688953, 0.00729266507551074,
  0.00483942124992609, 0.0032114461064338684, 0.0012905480107292533, 0.000429556705057621, 9.708286233944818e-5, 1.9461638657958247e-5,
  1.291476746700937e-5, 8.570255886297673e-6, 5.687232260243036e-6, 3.7740544485131977e-6, 2.504467147446121e-6, 1.6619674170215148e-6,
  1.1028836297555245e-6, 7.318749339901842e-7, 4.856731266045244e-7, 3.2229328894572973e-7, 2.1387423032592778e-7, 1.4192720243499934e-7,
  9.418306490260875e-8,
];
// Llama-3.1-8B: head_dim 128, factor 8; entries 0, 20, 40, 45, 50, 63.
const llama31 = [1.0, 0.016560440883040428, 3.428102354519069e-5, 1.2297638932068367e-5, 4.411534519022098e-6, 3.068925877869333e-7];

describe("Llama 3 RoPE scaling", () => {
  it("matches transformers on the Llama-3.2-1B shape (all 32 frequencies, float32 rounding)", () => {
    const config = readLlamaConfig(path.join(SHARED, "models/llama-3.2-1b-shape"));
    expect(config.ropeScaling).toEqual({ type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    const got = ropeInvFreq(config);
    expect(got.length).toBe(32);
    got.forEach((v, i) => expect(Math.abs(v - llama32[i]!) / llama32[i]!, `inv_freq[${i}]`).toBeLessThan(2e-7));
  });

  it("matches transformers at head_dim 128, factor 8 (Llama 3.1), across the low, blended and high bands", () => {
    const config = { headDim: 128, ropeTheta: 500000, ropeScaling: { type: "llama3" as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } };
    const got = ropeInvFreq(config);
    [0, 20, 40, 45, 50, 63].forEach((i, j) => expect(Math.abs(got[i]! - llama31[j]!) / llama31[j]!, `inv_freq[${i}]`).toBeLessThan(2e-7));
  });

  it("leaves plain RoPE untouched", () => {
    const got = ropeInvFreq({ headDim: 4, ropeTheta: 10000 });
    expect(Array.from(got)).toEqual([1, Math.fround(0.01)]);
  });

  it("reads transformers 5's rope_parameters, and refuses an incomplete or another scaling", () => {
    const minimal = { model_type: "llama", hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 32 };
    const v5 = parseLlamaConfig({ ...minimal, rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, "config.json");
    expect(v5.ropeScaling?.factor).toBe(8);
    expect(v5.ropeTheta).toBe(500000);
    expectSlimtuneError(() => parseLlamaConfig({ ...minimal, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }, "config.json"), "E_CONFIG", "high_freq_factor");
    expectSlimtuneError(() => parseLlamaConfig({ ...minimal, rope_scaling: { rope_type: "yarn", factor: 4 } }, "config.json"), "E_CONFIG", "yarn", "not supported yet");
  });
});
