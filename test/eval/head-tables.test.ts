// The embedding/LM head quantized at load for generation (eval/head-tables.ts), on ref-llama-5m
// quantized to 4-bit RTN: what it keeps in memory, its KL to the same model with the float head on
// WikiText-2 (the bound docs/benchmarks.md §2 states), and generation through it.

import fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { GraphCache } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { klToReference } from "../../src/eval/kl.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import type { LoadedBase } from "../../src/models/load.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, WIKITEXT_TEST } from "../helpers/paths.js";

const EMBED = "model.embed_tokens.weight";

describe("generation's quantized embedding/LM head", () => {
  let float: LlamaModel;
  let q4: LoadedBase & { kind: "quantized" };
  let tokenizer: TextTokenizer;
  let tokens: Int32Array;
  beforeAll(async () => {
    float = LlamaModel.load(REF_MODEL);
    q4 = { kind: "quantized", model: quantizeModel(float, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }) };
    tokenizer = await loadTokenizer(REF_MODEL);
    tokens = Int32Array.from(tokenizer.encode(fs.readFileSync(WIKITEXT_TEST, "utf8").slice(0, 40_000)).slice(0, 4096));
  });

  it("a quantized model gets an 8-bit table by default and no float copy; --head-bits float and a float model keep theirs", () => {
    const auto = withQuantizedHead(q4);
    expect(auto.bits).toBe(8);
    expect(auto.head).toMatch(/^8-bit table/);
    const qm = auto.base.kind === "quantized" ? auto.base.model : null;
    expect(qm?.tables?.embedding?.outFeatures).toBe(float.config.vocabSize);
    expect(qm?.tables?.lmHead).toBe(qm?.tables?.embedding); // tied: one table
    expect(qm?.dense.has(EMBED)).toBe(false);
    expect(q4.model.dense.has(EMBED)).toBe(true); // the loaded model is left as it was
    expect(withQuantizedHead(q4, 4).bits).toBe(4);
    expect(withQuantizedHead(q4, "float").base).toBe(q4);
    expect(withQuantizedHead({ kind: "float", model: float }).bits).toBeNull();
  });

  // Measured (4,080 WikiText-2 tokens, windows of 256): 4-bit head 1.13e-2 nats (top-1 0.890), 8-bit
  // 4.1e-5 (0.995), against 6.1e-3 for quantizing every layer to 4 bits: at this width (256) a 4-bit
  // head costs more than the 4-bit layers do, which is why generate's default head is 8-bit.
  it("the quantized head stays within the documented KL of the float head: 8-bit negligible, 4-bit about twice the 4-bit layers'", async () => {
    const scoring = (base: LoadedBase) => baseScoring(base);
    const caches = () => ({ model: new GraphCache(), reference: new GraphCache() });
    const floatHead = scoring(q4);
    const kl = async (bits: 4 | 8) => (await klToReference(scoring(withQuantizedHead(q4, bits).base), floatHead, caches(), tokens, { ctx: 256 }));
    const k4 = await kl(4);
    const k8 = await kl(8);
    const layers = await klToReference(floatHead, scoring({ kind: "float", model: float }), caches(), tokens, { ctx: 256 });
    console.log(`KL to the float head over ${k4.tokens} tokens: 4-bit head ${k4.meanKl.toExponential(3)} (top-1 ${k4.top1Agreement.toFixed(4)}), 8-bit ${k8.meanKl.toExponential(3)} (top-1 ${k8.top1Agreement.toFixed(4)}); the 4-bit layers' KL to float ${layers.meanKl.toExponential(3)}`);
    expect(k4.meanKl).toBeLessThan(0.02);
    expect(k4.top1Agreement).toBeGreaterThan(0.85);
    expect(k4.meanKl).toBeLessThan(3 * layers.meanKl);
    expect(k8.meanKl).toBeLessThan(1e-4);
    expect(k8.meanKl).toBeLessThan(k4.meanKl / 50);
    expect(k8.top1Agreement).toBeGreaterThan(0.99);
  });

  it("generates through an 8-bit table the float head's greedy tokens", async () => {
    const { base } = withQuantizedHead(q4, 8);
    const g = await Generator.create(baseScoring(base, { generation: true }), tokenizer);
    const r = await g.generate(" The tower is", { maxNewTokens: 8, temperature: 0, eosTokenIds: [] });
    await g.release();
    const h = await Generator.create(baseScoring(q4, { generation: true }), tokenizer);
    const ref = await h.generate(" The tower is", { maxNewTokens: 8, temperature: 0, eosTokenIds: [] });
    await h.release();
    // 8 bits move the logits by less than the gaps of this short greedy chain.
    expect(r.ids).toEqual(ref.ids);
  });
});
