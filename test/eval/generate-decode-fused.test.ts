// The fused generation graph with a fixed-capacity key/value cache (kv-graph.ts `fixedCache`): the
// caller feeds one buffer per layer and half, sized for the whole generation, and a run returns only
// the rows it adds. Its prefill and every decode step's logits agree with the portable graph's (the
// kv-graph-fused test's 2e-4) and greedy decoding picks the same tokens, float, 4-bit, Qwen2's biases
// and a pruned model; the graph returns no whole cache; and the Generator, which keeps the buffers,
// generates what the grown-cache generator does, across calls with prompts of different lengths
// and past the point where its buffers grow.

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { LlamaConfig } from "../../src/arch/llama/config.js";
import type { ParamSource } from "../../src/arch/params.js";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { argmax } from "../../src/eval/sampling.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { LOGITS, buildKvGraph, newRowsName, pastName, presentName } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { frozenScoring } from "../../src/models/llama/scoring.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { emptyPast, kvStepFeeds, pastFromPresent } from "../helpers/kv-step.js";
import { REF_MODEL, SHARED } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const PROMPT = [1, 417, 29, 3051, 88, 12, 940, 7];
const STEPS = 6;
const HALVES = ["key", "value"] as const;

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Greedy decoding with the cache grown by feeding back each run's present: the portable graph or the fused one. */
async function grownGreedy(config: LlamaConfig, params: ParamSource, fused: boolean): Promise<Float32Array[]> {
  const kv = buildKvGraph(config, params, { batch: 1, seq: "dynamic", past: true, logits: "last", fused });
  const step = await CompiledGraph.compile(kv.graph, kv.outputs);
  let out = await step.run({ ...kvStepFeeds(PROMPT, 0), ...emptyPast(kv.kvHeads, config.headDim) });
  const logits = [out[LOGITS]!.data as Float32Array];
  for (let s = 0; s < STEPS; s++) {
    out = await step.run({ ...kvStepFeeds([argmax(logits.at(-1)!)], PROMPT.length + s), ...pastFromPresent(out, kv.kvHeads.length) });
    logits.push(out[LOGITS]!.data as Float32Array);
  }
  await step.release();
  return logits;
}

/**
 * The same through the fused graph with fixed-capacity caches kept here: buffers of capacity
 * `capacity` (more than the tokens, so rows past the valid ones exist and must be ignored), filled
 * with NaN so a kernel that read them would poison the logits, each run's new rows written after the
 * valid ones.
 */
async function fixedGreedy(config: LlamaConfig, params: ParamSource, capacity: number): Promise<Float32Array[]> {
  const kv = buildKvGraph(config, params, { batch: 1, seq: "dynamic", past: true, logits: "last", fused: true, fixedCache: true });
  expect(kv.fixedCache).toBe(true);
  const names = Object.keys(kv.outputs);
  expect(names.some((n) => n.startsWith("present."))).toBe(false);
  expect(names.filter((n) => n.startsWith("new_rows."))).toHaveLength(2 * config.numLayers);
  const D = config.headDim;
  const buffers = kv.kvHeads.map((KV) => HALVES.map(() => new Float32Array(KV * capacity * D).fill(Number.NaN)));
  const past = (): Record<string, HostTensor> =>
    Object.fromEntries(kv.kvHeads.flatMap((KV, i) => HALVES.map((half, h) => [pastName(i, half), { data: buffers[i]![h]!, shape: [1, KV, capacity, D] }])));
  const keep = (out: Record<string, HostTensor>, start: number, count: number) =>
    kv.kvHeads.forEach((KV, i) =>
      HALVES.forEach((half, h) => {
        const rows = out[newRowsName(i, half)]!;
        expect(rows.shape).toEqual([1, KV, count, D]);
        for (let head = 0; head < KV; head++) buffers[i]![h]!.set((rows.data as Float32Array).subarray(head * count * D, (head + 1) * count * D), (head * capacity + start) * D);
      }),
    );
  const step = await CompiledGraph.compile(kv.graph, kv.outputs);
  let out = await step.run({ ...kvStepFeeds(PROMPT, 0), ...past() });
  keep(out, 0, PROMPT.length);
  const logits = [out[LOGITS]!.data as Float32Array];
  for (let s = 0; s < STEPS; s++) {
    out = await step.run({ ...kvStepFeeds([argmax(logits.at(-1)!)], PROMPT.length + s), ...past() });
    keep(out, PROMPT.length + s, 1);
    logits.push(out[LOGITS]!.data as Float32Array);
  }
  await step.release();
  return logits;
}

/**
 * Against the portable graph within 2e-4 (exact MatMulNBits, accuracy level 0), and against the fused
 * graph with a grown cache bit for bit (the same kernels over the same valid rows), which also holds
 * at accuracy level 4, where int8 activations make fused and portable differ by more than 2e-4.
 */
async function expectSameDecoding(config: LlamaConfig, params: () => ParamSource, exact?: () => ParamSource): Promise<void> {
  const portable = await grownGreedy(config, params(), false);
  const fixed = await fixedGreedy(config, params(), PROMPT.length + STEPS + 5);
  expect(fixed).toHaveLength(STEPS + 1);
  fixed.forEach((l, s) => expect(maxDiff(l, portable[s]!), `step ${s}`).toBeLessThan(2e-4));
  expect(fixed.map(argmax)).toEqual(portable.map(argmax));
  for (const p of exact ? [params, exact] : [params]) {
    const grown = await grownGreedy(config, p(), true);
    const same = await fixedGreedy(config, p(), PROMPT.length + STEPS + 1); // no spare row this time
    same.forEach((l, s) => expect(Array.from(l), `step ${s}`).toEqual(Array.from(grown[s]!)));
  }
}

const dense = (model: LlamaModel) => () => new DenseParams(new Graph(), model.weights, new Set());

describe("the fused graph with a fixed-capacity K/V cache decodes as the portable one", () => {
  let ref: LlamaModel;
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    ref = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
  });

  it("ref-llama-5m, float", async () => {
    await expectSameDecoding(ref.config, dense(ref));
  });

  it("ref-llama-5m at 4 bits (MatMulNBits, 4-bit table)", async () => {
    const { base } = withQuantizedHead({ kind: "quantized", model: quantizeModel(ref, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }) }, 4);
    if (base.kind !== "quantized") throw new Error("expected a quantized model");
    const qm = base.model;
    const at = (accuracyLevel: 0 | 4) => () => new QuantizedParams(new Graph(), qm, { fused: true, accuracyLevel, tables: qm.tables! });
    await expectSameDecoding(ref.config, at(0), at(4));
  });

  it("tiny-qwen2-variant (q/k/v biases)", async () => {
    const model = LlamaModel.load(path.join(SHARED, "models", "tiny-qwen2-variant"));
    await expectSameDecoding(model.config, dense(model));
  });

  it("a pruned model (a layer without attention keeps an empty cache)", async () => {
    const pruned = prunedRefModel();
    await expectSameDecoding(pruned.config, dense(pruned));
  });

  it("a graph that cannot fuse ignores fixedCache and returns the whole cache", () => {
    const kv = buildKvGraph(ref.config, dense(ref)(), { batch: 1, seq: "dynamic", past: true, logits: "last", fused: false, fixedCache: true });
    expect(kv.fixedCache).toBe(false);
    expect(Object.keys(kv.outputs)).toContain(presentName(0, "key"));
  });

  it("the Generator's fixed cache generates the grown cache's tokens, call after call", async () => {
    const opts = { maxNewTokens: 10, temperature: 0, eosTokenIds: [] };
    const model = frozenScoring(ref);
    const fixed = await Generator.create(model, tokenizer, { threads: 1 });
    const grown = await Generator.create(model, tokenizer, { threads: 1 }, { fixedCache: false });
    // A longer prompt after a shorter one (the buffers are sized per call), and the first again.
    for (const prompt of [PROMPT, [...PROMPT, ...PROMPT, 5, 6, 7], PROMPT]) {
      const want = await grown.generate(prompt, opts);
      const got = await fixed.generate(prompt, opts);
      expect(got.ids).toHaveLength(10);
      expect(got.ids).toEqual(want.ids);
    }
    await fixed.release();
    await grown.release();
  });

  it("a fixed cache that fills up grows and keeps its rows: 300 new tokens after 8 (it starts at 8 + 256 rows)", async () => {
    const opts = { maxNewTokens: 300, temperature: 0, eosTokenIds: [] };
    const model = frozenScoring(ref);
    const fixed = await Generator.create(model, tokenizer, { threads: 1 });
    const grown = await Generator.create(model, tokenizer, { threads: 1 }, { fixedCache: false });
    const [want, got] = [await grown.generate(PROMPT, opts), await fixed.generate(PROMPT, opts)];
    expect(got.ids).toHaveLength(300);
    expect(got.ids).toEqual(want.ids);
    await fixed.release();
    await grown.release();
  });
});
