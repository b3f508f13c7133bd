// KL to a reference: zero and full agreement against itself, perplexities equal to perplexity()'s,
// more damage at fewer bits, and a typed error for a reference with another vocabulary.

import fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { GraphCache } from "../../src/engine/index.js";
import { klToReference } from "../../src/eval/kl.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { scoringFor } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, WIKITEXT_TEST } from "../helpers/paths.js";

let model: LlamaModel;
let tokens: Int32Array;
const caches = () => ({ model: new GraphCache(), reference: new GraphCache() });

beforeAll(async () => {
  model = LlamaModel.load(REF_MODEL);
  const tok = await loadTokenizer(REF_MODEL);
  tokens = Int32Array.from(tok.encode(fs.readFileSync(WIKITEXT_TEST, "utf8").slice(0, 40_000))).slice(0, 3000);
});

describe("klToReference", () => {
  it("is 0 with full agreement against the model itself, and its perplexity is perplexity()'s", async () => {
    const float = scoringFor({ kind: "float", model });
    const k = await klToReference(float, float, caches(), tokens, { ctx: 256 });
    const p = await perplexity(float, new GraphCache(), tokens, { ctx: 256 });
    expect(k.meanKl).toBeLessThan(1e-6);
    expect(k.top1Agreement).toBe(1);
    expect(k.tokens).toBe(p.tokens);
    expect(Math.abs(k.perplexity - p.perplexity) / p.perplexity).toBeLessThan(1e-5);
    expect(k.deltaPerplexity).toBeCloseTo(0, 6);
  });

  it("grows as bits fall: RTN 8 < 4 < 2 bits, agreement the other way", async () => {
    const float = scoringFor({ kind: "float", model });
    const at = async (bits: 2 | 4 | 8) =>
      klToReference(scoringFor({ kind: "quantized", model: quantizeModel(model, { scheme: "rtn", bits, groupSize: "channel", symmetric: false }) }), float, caches(), tokens, { ctx: 256 });
    const [k8, k4, k2] = [await at(8), await at(4), await at(2)];
    expect(k8.meanKl).toBeGreaterThan(0);
    expect(k8.meanKl).toBeLessThan(k4.meanKl);
    expect(k4.meanKl).toBeLessThan(k2.meanKl);
    expect(k8.top1Agreement).toBeGreaterThan(k2.top1Agreement);
    expect(k8.klP99).toBeGreaterThanOrEqual(k8.meanKl);
  });

  it("refuses a reference with another vocabulary, naming both sizes", async () => {
    const float = scoringFor({ kind: "float", model });
    const other = { ...float, config: { ...float.config, vocabSize: 32000 } };
    await expect(klToReference(float, other, caches(), tokens, { ctx: 256 })).rejects.toMatchObject({ code: "E_CONFIG", message: expect.stringMatching(/32000.*4096/) });
  });

  it("refuses a reference from another tokenizer configuration (end-of-sequence id)", async () => {
    const float = scoringFor({ kind: "float", model });
    const other = { ...float, config: { ...float.config, eosTokenId: 2 } };
    await expect(klToReference(float, other, caches(), tokens, { ctx: 256 })).rejects.toMatchObject({ code: "E_CONFIG", message: expect.stringMatching(/eos_token_id is 2, the model's 4095/) });
  });
});
