// Generation with a key/value cache on ref-llama-5m: greedy tokens equal the argmax of the
// full-sequence logits at every step (cache = no cache), for the float model and a 4-bit model at
// accuracy level 4; sampling is seeded; streaming and stop strings; bad arguments.

import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, gemm } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { argmax } from "../../src/eval/sampling.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { llamaHidden } from "../../src/models/llama/graph.js";
import { ATTENTION_MASK, INPUT_IDS, LOGITS, POSITION_IDS, buildKvGraph } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { ScoringModel } from "../../src/models/scoring.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);

/** Logits [T, V] of `ids` in one run without a cache: the static graph, or the cached graph with P = 0. */
async function noCacheLogits(model: ScoringModel, ids: number[], via: "static" | "kv"): Promise<Float32Array> {
  const T = ids.length;
  if (via === "static") {
    const p = model.params(new Graph());
    const x = p.graph.input(INPUT_IDS, [1, T], "int64");
    const logits = gemm(llamaHidden(model.config, p, { ids: x }), p.tensor("model.embed_tokens.weight"), { transB: true });
    const compiled = await CompiledGraph.compile(p.graph, { logits });
    return (await compiled.run({ [INPUT_IDS]: { data: i64(ids), shape: [1, T] } })).logits!.data as Float32Array;
  }
  const { graph, outputs } = buildKvGraph(model.config, model.params(new Graph()), { batch: 1, seq: "dynamic", past: false, logits: "all" });
  const compiled = await CompiledGraph.compile(graph, outputs);
  const out = await compiled.run({
    [INPUT_IDS]: { data: i64(ids), shape: [1, T] },
    [ATTENTION_MASK]: { data: i64(ids.map(() => 1)), shape: [1, T] },
    [POSITION_IDS]: { data: i64(ids.map((_, i) => i)), shape: [1, T] },
  });
  return out[LOGITS]!.data as Float32Array;
}

/**
 * Each generated token is the argmax of the no-cache logits at its position, up to `tie`: the
 * integer kernels of MatMulNBits at accuracy level 4 round differently for one row than for many
 * (logits move by up to ~5e-3 on ref-llama-5m), which may swap two near-equal candidates; a broken
 * cache moves them by whole units.
 */
function expectGreedyChain(logits: Float32Array, promptLength: number, ids: number[], V: number, tie = 0): void {
  ids.forEach((id, i) => {
    const t = promptLength - 1 + i;
    const row = logits.subarray(t * V, (t + 1) * V);
    if (tie === 0) expect(argmax(row), `token ${i}`).toBe(id);
    else expect(row[argmax(row)]! - row[id]!, `token ${i}`).toBeLessThanOrEqual(tie);
  });
}

describe("generate", () => {
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let float: Generator;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
    float = await Generator.create(baseScoring({ kind: "float", model }, { generation: true }), tokenizer);
  });

  it("greedy decoding with the cache picks the full-sequence argmax at every step (float)", async () => {
    const r = await float.generate(PROMPT, { maxNewTokens: 24, temperature: 0, eosTokenIds: [] });
    expect(r.promptIds).toEqual(tokenizer.encode(PROMPT)); // GPT-2-style tokenizer: no BOS
    expect(r.ids).toHaveLength(24);
    expect(r.stopReason).toBe("length");
    expect(r.text).toBe(tokenizer.decode(r.ids));
    const logits = await noCacheLogits(baseScoring({ kind: "float", model }), [...r.promptIds, ...r.ids.slice(0, -1)], "static");
    expectGreedyChain(logits, r.promptIds.length, r.ids, model.config.vocabSize);
    expect(r.prefillTokensPerS).toBeGreaterThan(0);
    expect(r.decodeTokensPerS).toBeGreaterThan(0);
    // Node reports the CPU time of each phase; a decode of 23 runs takes some.
    expect(r.prefillCpuSeconds).toBeGreaterThan(0);
    expect(r.decodeCpuSeconds).toBeGreaterThan(0);
  });

  it("a 4-bit model decodes through MatMulNBits at accuracy level 4, and the cache changes nothing", async () => {
    const qm = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true });
    const scoring = baseScoring({ kind: "quantized", model: qm }, { generation: true });
    const g = await Generator.create(scoring, tokenizer);
    const r = await g.generate(PROMPT, { maxNewTokens: 16, temperature: 0, eosTokenIds: [] });
    await g.release();
    const logits = await noCacheLogits(scoring, [...r.promptIds, ...r.ids.slice(0, -1)], "kv");
    expectGreedyChain(logits, r.promptIds.length, r.ids, model.config.vocabSize, 1e-2);
  });

  it("samples reproducibly from a seed; top-k 1 is greedy", async () => {
    const opts = { maxNewTokens: 12, temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.1, eosTokenIds: [] };
    const a = await float.generate(PROMPT, { ...opts, seed: 7 });
    const b = await float.generate(PROMPT, { ...opts, seed: 7 });
    const c = await float.generate(PROMPT, { ...opts, seed: 8 });
    expect(a.ids).toEqual(b.ids);
    expect(a.ids).not.toEqual(c.ids);
    const greedy = await float.generate(PROMPT, { maxNewTokens: 12, temperature: 0, eosTokenIds: [] });
    const top1 = await float.generate(PROMPT, { maxNewTokens: 12, temperature: 1, topK: 1, seed: 3, eosTokenIds: [] });
    expect(top1.ids).toEqual(greedy.ids);
  });

  it("streams the text in pieces and stops before a stop string", async () => {
    const full = await float.generate(PROMPT, { maxNewTokens: 24, temperature: 0, eosTokenIds: [] });
    const stop = full.text.slice(6, 10);
    const pieces: string[] = [];
    const r = await float.generate(PROMPT, { maxNewTokens: 24, temperature: 0, eosTokenIds: [], stop: [stop], onText: (d) => pieces.push(d) });
    expect(r.stopReason).toBe("stop");
    expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(pieces.join("")).toBe(r.text);
    expect(pieces.some((p) => p.includes(stop))).toBe(false);
  });

  it("ends on an end-of-sequence token and keeps it in ids, not in the text", async () => {
    const first = (await float.generate(PROMPT, { maxNewTokens: 3, temperature: 0, eosTokenIds: [] })).ids;
    const r = await float.generate(PROMPT, { maxNewTokens: 10, temperature: 0, eosTokenIds: [first[2]!] });
    expect(r.stopReason).toBe("eos");
    expect(r.ids).toEqual(first);
    expect(r.text).toBe(tokenizer.decode(first.slice(0, 2)));
  });

  it("refuses a prompt longer than the context and a non-positive token count", async () => {
    const long = Array.from({ length: model.config.maxPositionEmbeddings }, (_, i) => i % 100);
    await expect(float.generate(long, { maxNewTokens: 4, temperature: 0 })).rejects.toThrow(/the prompt has 1024 tokens, but the model's context is 1024/);
    await expect(float.generate(PROMPT, { maxNewTokens: 0, temperature: 0 })).rejects.toThrow(/--max-new-tokens 0 must be a positive integer/);
    await expect(float.generate(PROMPT, { maxNewTokens: -3, temperature: 0 })).rejects.toThrow(/--max-new-tokens -3/);
    const r = await float.generate(long.slice(0, 1020), { maxNewTokens: 10, temperature: 0, eosTokenIds: [] });
    expect(r.ids).toHaveLength(4);
    expect(r.stopReason).toBe("context");
  });
});
