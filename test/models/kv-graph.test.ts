// The cached decoder against the full-sequence graph on ref-llama-5m: a prefill then one token at a
// time through the cache gives the logits the static graph gives for the whole window; a left-padded
// batch gives each row's unpadded logits; a pruned model with per-layer widths works too.

import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor, gemm } from "../../src/engine/index.js";
import { llamaHidden } from "../../src/models/llama/graph.js";
import { ATTENTION_MASK, INPUT_IDS, LOGITS, POSITION_IDS, buildKvGraph, pastName, presentName } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { REF_MODEL } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const ids = [1, 417, 29, 3051, 88, 12, 940, 7, 2201, 45, 600, 31];
const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);

/** Logits [T, V] of the static full-sequence graph. */
async function fullLogits(model: LlamaModel, tokens: number[]): Promise<Float32Array> {
  const p = new DenseParams(new Graph(), model.weights, new Set());
  const g = p.graph;
  const x = g.input(INPUT_IDS, [1, tokens.length], "int64");
  const hidden = llamaHidden(model.config, p, { ids: x });
  const logits = gemm(hidden, p.tensor("model.embed_tokens.weight"), { transB: true });
  const compiled = await CompiledGraph.compile(g, { logits });
  return (await compiled.run({ [INPUT_IDS]: { data: i64(tokens), shape: [1, tokens.length] } })).logits!.data as Float32Array;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Prefill `prefix` tokens, then feed the rest one at a time; returns each step's last logits. */
async function cachedLogits(model: LlamaModel, tokens: number[], prefix: number): Promise<Float32Array[]> {
  const config = model.config;
  const params = () => new DenseParams(new Graph(), model.weights, new Set());
  const prefill = buildKvGraph(config, params(), { batch: 1, seq: "dynamic", past: false, logits: "last" });
  const decode = buildKvGraph(config, params(), { batch: 1, seq: 1, past: true, logits: "last" });
  const pre = await CompiledGraph.compile(prefill.graph, prefill.outputs);
  const dec = await CompiledGraph.compile(decode.graph, decode.outputs);
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  let out = await pre.run({
    [INPUT_IDS]: { data: i64(tokens.slice(0, prefix)), shape: [1, prefix] },
    [ATTENTION_MASK]: { data: i64(tokens.slice(0, prefix).map(() => 1)), shape: [1, prefix] },
    [POSITION_IDS]: { data: i64(range(0, prefix)), shape: [1, prefix] },
  });
  const steps = [out[LOGITS]!.data as Float32Array];
  for (let t = prefix; t < tokens.length; t++) {
    const feeds: Record<string, HostTensor> = {
      [INPUT_IDS]: { data: i64([tokens[t]!]), shape: [1, 1] },
      [ATTENTION_MASK]: { data: i64(range(0, t + 1).map(() => 1)), shape: [1, t + 1] },
      [POSITION_IDS]: { data: i64([t]), shape: [1, 1] },
    };
    decode.kvHeads.forEach((_, i) => {
      feeds[pastName(i, "key")] = out[presentName(i, "key")]!;
      feeds[pastName(i, "value")] = out[presentName(i, "value")]!;
    });
    out = await dec.run(feeds);
    steps.push(out[LOGITS]!.data as Float32Array);
  }
  return steps;
}

describe("decoding with a key/value cache equals the full sequence", () => {
  let model: LlamaModel;
  let full: Float32Array;
  const V = 4096;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    full = await fullLogits(model, ids);
  });

  it("prefill 5 tokens, then 7 one at a time", async () => {
    const steps = await cachedLogits(model, ids, 5);
    expect(steps).toHaveLength(ids.length - 4);
    steps.forEach((logits, j) => {
      const t = 4 + j;
      expect(maxDiff(logits, full.subarray(t * V, (t + 1) * V))).toBeLessThan(2e-4);
    });
  });

  it("a left-padded batch of two (symbolic batch, all logits) gives each row's own logits", async () => {
    const { graph, outputs } = buildKvGraph(model.config, new DenseParams(new Graph(), model.weights, new Set()), { batch: "dynamic", seq: "dynamic", past: true, logits: "all" });
    const compiled = await CompiledGraph.compile(graph, outputs);
    const T = ids.length;
    const short = ids.slice(0, 8);
    const pad = T - short.length;
    const feeds: Record<string, HostTensor> = {
      [INPUT_IDS]: { data: i64([...ids, ...short.map(() => 0).slice(0, pad), ...short]), shape: [2, T] },
      [ATTENTION_MASK]: { data: i64([...ids.map(() => 1), ...Array(pad).fill(0), ...short.map(() => 1)]), shape: [2, T] },
      // transformers.js: cumsum(mask) − 1, with padding at position 1.
      [POSITION_IDS]: { data: i64([...ids.map((_, i) => i), ...Array(pad).fill(1), ...short.map((_, i) => i)]), shape: [2, T] },
    };
    for (let i = 0; i < model.config.numLayers; i++) {
      for (const half of ["key", "value"] as const) feeds[pastName(i, half)] = { data: new Float32Array(0), shape: [2, model.config.numKvHeads, 0, model.config.headDim] };
    }
    const out = await compiled.run(feeds);
    const logits = out[LOGITS]!.data as Float32Array;
    expect(out[LOGITS]!.shape).toEqual([2, T, V]);
    expect(out[presentName(0, "key")]!.shape).toEqual([2, model.config.numKvHeads, T, model.config.headDim]);
    expect(maxDiff(logits.subarray(0, T * V), full)).toBeLessThan(2e-4);
    const shortFull = await fullLogits(model, short);
    expect(maxDiff(logits.subarray((T + pad) * V, 2 * T * V), shortFull)).toBeLessThan(2e-4);
  });

  it("a pruned model with per-layer widths (a layer without attention) decodes as its full sequence", async () => {
    const pruned = prunedRefModel();
    const want = await fullLogits(pruned, ids);
    const steps = await cachedLogits(pruned, ids, 3);
    steps.forEach((logits, j) => {
      const t = 2 + j;
      expect(maxDiff(logits, want.subarray(t * V, (t + 1) * V))).toBeLessThan(2e-4);
    });
  });
});
