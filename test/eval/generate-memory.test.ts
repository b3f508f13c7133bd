// Generation's low-memory session path: the KV graph's weights go to ONNX Runtime through an
// external-data file and the host's constants are detached once written. The prefill's and every
// decode step's logits equal those of the in-memory session bit for bit (float and 4-bit), and a
// generator handed a float model lets go of its weights and still generates what a keeper does.

import { beforeAll, describe, expect, it } from "vitest";
import type { ParamSource } from "../../src/arch/params.js";
import { CompiledGraph, type SessionOptions } from "../../src/engine/index.js";
import { Graph } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { argmax } from "../../src/eval/sampling.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { LOGITS, buildKvGraph } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { frozenScoring } from "../../src/models/llama/scoring.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { emptyPast, kvStepFeeds, pastFromPresent } from "../helpers/kv-step.js";
import { REF_MODEL } from "../helpers/paths.js";

const PROMPT = [1, 417, 29, 3051, 88, 12, 940, 7];
const STEPS = 5;

/** The prefill's logits and each greedy step's, through one session compiled with `session`. */
async function decodeLogits(model: LlamaModel, params: (g: Graph) => ParamSource, session: SessionOptions): Promise<Float32Array[]> {
  const kv = buildKvGraph(model.config, params(new Graph()), { batch: 1, seq: "dynamic", past: true, logits: "last", fused: true });
  const step = await CompiledGraph.compile(kv.graph, kv.outputs, { threads: 1, ...session });
  try {
    let out = await step.run({ ...kvStepFeeds(PROMPT, 0), ...emptyPast(kv.kvHeads, model.config.headDim) });
    const logits = [out[LOGITS]!.data as Float32Array];
    for (let s = 0; s < STEPS; s++) {
      out = await step.run({ ...kvStepFeeds([argmax(logits.at(-1)!)], PROMPT.length + s), ...pastFromPresent(out, kv.kvHeads.length) });
      logits.push(out[LOGITS]!.data as Float32Array);
    }
    return logits;
  } finally {
    await step.release();
  }
}

describe("generation's external-data session", () => {
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    tokenizer = await loadTokenizer(REF_MODEL);
  });

  it("gives the in-memory session's logits bit for bit, float and 4-bit, while detaching the constants", async () => {
    const float = LlamaModel.load(REF_MODEL);
    const inMemory = await decodeLogits(float, (g) => new DenseParams(g, float.weights, new Set()), {});
    const handed = LlamaModel.load(REF_MODEL);
    const fromFile = await decodeLogits(handed, (g) => new DenseParams(g, handed.weights, new Set()), { weightsFile: true, releaseConstants: true });
    expect(handed.weights.get("model.layers.0.mlp.up_proj.weight")!.data.length).toBe(0);
    expect(fromFile).toHaveLength(STEPS + 1);
    fromFile.forEach((l, s) => expect(Array.from(l), `float step ${s}`).toEqual(Array.from(inMemory[s]!)));

    const quantized = () => {
      const { base } = withQuantizedHead({ kind: "quantized", model: quantizeModel(float, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }) }, 4);
      if (base.kind !== "quantized") throw new Error("expected a quantized model");
      const qm = base.model;
      return (g: Graph) => new QuantizedParams(g, qm, { fused: true, accuracyLevel: 4, tables: qm.tables! });
    };
    const q4Memory = await decodeLogits(float, quantized(), {});
    const q4File = await decodeLogits(float, quantized(), { weightsFile: true, releaseConstants: true });
    q4File.forEach((l, s) => expect(Array.from(l), `4-bit step ${s}`).toEqual(Array.from(q4Memory[s]!)));
    // The two runs really differ in weights: a check that would pass on empty or constant logits fails here.
    expect(Array.from(q4File[0]!)).not.toEqual(Array.from(inMemory[0]!));
  });

  it("a generator handed a float model frees its weights and generates what a keeper generates", async () => {
    const opts = { maxNewTokens: 8, temperature: 0, eosTokenIds: [] };
    const kept = LlamaModel.load(REF_MODEL);
    const keeper = await Generator.create(frozenScoring(kept), tokenizer, { threads: 1 });
    const want = await keeper.generate(PROMPT, opts);
    await keeper.release();
    expect(kept.weights.get("model.embed_tokens.weight")!.data.length).toBeGreaterThan(0);

    const handed = LlamaModel.load(REF_MODEL);
    const weightBytes = () => [...handed.weights.values()].reduce((n, w) => n + w.data.byteLength, 0);
    expect(weightBytes()).toBeGreaterThan(20e6); // ref-llama-5m: 5.5 M float32 parameters
    const taker = await Generator.create(baseScoring({ kind: "float", model: handed }, { generation: true }), tokenizer, { threads: 1 }, { releaseHostCodes: true });
    expect(weightBytes()).toBe(0);
    const got = await taker.generate(PROMPT, opts);
    const again = await taker.generate(PROMPT, opts);
    await taker.release();
    expect(got.ids).toEqual(want.ids);
    expect(again.ids).toEqual(want.ids);
  });
});
