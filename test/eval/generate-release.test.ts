// A generator the model is handed over to (`slimtune generate`, `chat`) frees the host copies of the
// integer codes once its graph holds them, and generates exactly what a generator that kept them does.

import { beforeAll, describe, expect, it } from "vitest";
import { Generator } from "../../src/eval/generate.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { REF_MODEL } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const opts = { maxNewTokens: 10, temperature: 0, eosTokenIds: [] };

describe("a generator that takes the model over", () => {
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
  });

  const quantized = (): QuantizedModel => {
    const { base } = withQuantizedHead({ kind: "quantized", model: quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }) }, 8);
    if (base.kind !== "quantized") throw new Error("expected a quantized model");
    return base.model;
  };
  const codeBytes = (qm: QuantizedModel) => [...qm.linears.values()].reduce((n, q) => n + (q.kind === "reallm" ? 0 : q.codes.byteLength), 0) + (qm.tables?.embedding?.codes.byteLength ?? 0);

  it("frees every layer's and the table's codes, and generates the same tokens", async () => {
    const kept = quantized();
    const keeper = await Generator.create(baseScoring({ kind: "quantized", model: kept }, { generation: true }), tokenizer);
    const want = await keeper.generate(PROMPT, opts);
    await keeper.release();
    expect(codeBytes(kept)).toBeGreaterThan(0);

    const handed = quantized();
    expect(handed.tables?.embedding).toBeDefined();
    const before = codeBytes(handed);
    const taker = await Generator.create(baseScoring({ kind: "quantized", model: handed }, { generation: true }), tokenizer, {}, { releaseHostCodes: true });
    expect(before).toBeGreaterThan(4e6); // ref-llama-5m: 4.3 M codes in the layers, 1 M in the table
    expect(codeBytes(handed)).toBe(0);
    const got = await taker.generate(PROMPT, opts);
    expect(got.ids).toEqual(want.ids);
    await taker.release();
  });
});
