// KL(reference ‖ model) against values worked out by hand, so the direction matters (kl.test.ts only
// checks KL(x ‖ x) = 0 and an ordering, which a reversed KL also passes).
//
// Two models with no decoder layers: logits = head · rmsNorm(embedding). The embeddings have unit
// RMS, so the norm leaves them as they are. After input token 0 the reference predicts
// p = (1/4, 1/2, 1/4) (logits 0, ln 2, 0) and the model q = (1/3, 1/3, 1/3); after token 1 both are
// uniform. Then per position:
//   KL(p ‖ q) = ½ ln(3/4) + ½ ln(3/2) = ½ ln(9/8) ≈ 0.058892 after a 0, 0 after a 1,
// while the reversed KL(q ‖ p) = ⅓ ln(32/27) ≈ 0.056633 would be.

import { describe, expect, it } from "vitest";
import type { LlamaConfig } from "../../src/arch/llama/config.js";
import type { HostParam } from "../../src/arch/params.js";
import { GraphCache } from "../../src/engine/index.js";
import { klToReference } from "../../src/eval/kl.js";
import { DenseParams } from "../../src/models/llama/params.js";
import type { ScoringModel } from "../../src/models/scoring.js";

const config: LlamaConfig = {
  modelType: "llama",
  hiddenSize: 2,
  intermediateSize: 2,
  numLayers: 0,
  numHeads: 1,
  numKvHeads: 1,
  headDim: 2,
  vocabSize: 3,
  rmsNormEps: 1e-12,
  ropeTheta: 10000,
  tieWordEmbeddings: false,
  qkNorm: false,
  maxPositionEmbeddings: 64,
  attentionBias: false,
  outputBias: false,
  mlpBias: false,
  hiddenAct: "silu",
  raw: {},
};

const half = Math.LN2 / 2;
function zeroLayerModel(head: number[], key: string): ScoringModel {
  const weights = new Map<string, HostParam>([
    ["model.embed_tokens.weight", { data: Float32Array.from([1, 1, 1, -1, -1, 1]), shape: [3, 2] }],
    ["model.norm.weight", { data: Float32Array.from([1, 1]), shape: [2] }],
    ["lm_head.weight", { data: Float32Array.from(head), shape: [3, 2] }],
  ]);
  return { config, params: (g) => new DenseParams(g, weights, new Set()), weightFeeds: () => ({}), cacheKey: key };
}

// Reference: token 0 → logits (0, ln 2, 0); token 1 → (0, 0, 0). Model: every logit 0.
const reference = zeroLayerModel([0, 0, half, half, 0, 0], "p");
const model = zeroLayerModel([0, 0, 0, 0, 0, 0], "q");
const caches = () => ({ model: new GraphCache(), reference: new GraphCache() });

describe("KL to a reference, by hand", () => {
  it("one window 0 1 0 1 0: mean KL ½·½ ln(9/8), top-1 agreement ½, perplexities 3 and √6", async () => {
    const tokens = Int32Array.from([0, 1, 0, 1, 0]);
    const k = await klToReference(model, reference, caches(), tokens, { ctx: 5 });
    expect(k.tokens).toBe(4);
    expect(k.meanKl).toBeCloseTo(0.5 * 0.5 * Math.log(9 / 8), 6);
    expect(Math.abs(k.meanKl - 0.5 * (1 / 3) * Math.log(32 / 27))).toBeGreaterThan(5e-4); // not the reversed KL
    expect(k.klP99).toBeCloseTo(0.5 * Math.log(9 / 8), 6);
    // p's argmax after a 0 is token 1, q's is token 0 (the first of equals); after a 1 both pick 0.
    expect(k.top1Agreement).toBe(0.5);
    expect(k.perplexity).toBeCloseTo(3, 5);
    // The reference gives the targets 1/2 (1 after 0) and 1/3 (0 after 1): exp(½ ln 2 + ½ ln 3).
    expect(k.referencePerplexity).toBeCloseTo(Math.sqrt(6), 5);
    expect(k.deltaPerplexity).toBeCloseTo(3 - Math.sqrt(6), 5);
  });

  it("swapping the roles gives the reversed KL, ⅓ ln(32/27) per position after a 0", async () => {
    const tokens = Int32Array.from([0, 0, 0]);
    const k = await klToReference(reference, model, caches(), tokens, { ctx: 3 });
    expect(k.meanKl).toBeCloseTo((1 / 3) * Math.log(32 / 27), 6);
  });
});
