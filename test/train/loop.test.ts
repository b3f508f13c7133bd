// The training loop on the real model: it learns, stops and resumes exactly, and its output loads back.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Graph, GraphCache } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { frozenScoring } from "../../src/models/llama/scoring.js";
import { CompiledGraph } from "../../src/engine/index.js";
import { defaultTrainOptions, train, type TrainOptions } from "../../src/train/loop.js";
import { lmTask } from "../../src/train/lm-task.js";
import { REF_MODEL, WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

let trainTokens: Int32Array;
let testTokens: Int32Array;

beforeAll(async () => {
  const tok = await loadTokenizer(REF_MODEL);
  trainTokens = Int32Array.from(tok.encode(fs.readFileSync(WIKITEXT_VALID, "utf8")));
  testTokens = Int32Array.from(tok.encode(fs.readFileSync(WIKITEXT_TEST, "utf8"))).slice(0, 8192);
});

const small = (outDir: string, over: Partial<TrainOptions> = {}): TrainOptions => ({
  ...defaultTrainOptions,
  steps: 6,
  lr: 1e-3,
  warmupSteps: 1,
  evalEvery: 0,
  checkpointEvery: 0,
  outDir,
  ...over,
});
const task = () => lmTask(trainTokens, { batch: 4, seq: 64, heldOut: 0.02, evalTokens: 2048 });

const testPerplexity = async (model: LlamaModel) =>
  (await perplexity(frozenScoring(model), new GraphCache(), testTokens, { ctx: 128 })).perplexity;

describe("training loop", () => {
  it("full fine-tuning on WikiText-2 valid lowers WikiText-2 test perplexity", async () => {
    const model = LlamaModel.load(REF_MODEL);
    const before = await testPerplexity(model);
    const summary = await train(fullFineTuning(model), task(), small(scratchDir("learn"), { steps: 12 }));
    const after = await testPerplexity(model);
    expect(summary.steps).toBe(12);
    expect(summary.heldOutAfter!.loss).toBeLessThan(summary.heldOutBefore!.loss);
    expect(after).toBeLessThan(before * 0.7);
  });

  it("stopping and resuming gives the same weights as an uninterrupted run", async () => {
    const straight = LlamaModel.load(REF_MODEL);
    await train(fullFineTuning(straight), task(), small(scratchDir("straight")));

    const dir = scratchDir("resumed");
    const first = LlamaModel.load(REF_MODEL);
    let steps = 0;
    const stopped = await train(fullFineTuning(first), task(), small(dir), { shouldStop: () => ++steps === 3 });
    expect(stopped.stopped).toBe(true);
    expect(stopped.steps).toBe(3);

    const second = LlamaModel.load(REF_MODEL); // fresh weights: everything must come from the checkpoint
    const resumed = await train(fullFineTuning(second), task(), small(dir, { resume: true }));
    expect(resumed.resumedFrom).toBe(3);
    expect(resumed.steps).toBe(6);
    for (const [name, w] of straight.weights) {
      const r = second.weights.get(name)!.data;
      let worst = 0;
      for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(r[i]! - w.data[i]!));
      expect(worst, name).toBeLessThan(1e-6);
    }
    const lines = fs.readFileSync(path.join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.kind === "train").map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("the saved folder loads back with equal logits", async () => {
    const model = LlamaModel.load(REF_MODEL);
    const method = fullFineTuning(model);
    const dir = scratchDir("save");
    await train(method, task(), small(dir, { steps: 2 }));
    method.save(path.join(dir, "model"));
    const reloaded = LlamaModel.load(path.join(dir, "model"));
    const logits = async (m: LlamaModel) => {
      const { graph, outputs } = buildLmTrainGraph(m.config, new DenseParams(new Graph(), m.weights, new Set()), 1, 16, [], { logits: true });
      const compiled = await CompiledGraph.compile(graph, outputs);
      const ids = BigInt64Array.from(trainTokens.subarray(0, 16), BigInt);
      const out = await compiled.run({ [IDS]: { data: ids, shape: [1, 16] }, [TARGETS]: { data: ids, shape: [16] } });
      return out.logits!.data as Float32Array;
    };
    const a = await logits(model);
    const b = await logits(reloaded);
    expect(b).toEqual(a);
    // and they differ from the untrained model's
    const base = await logits(LlamaModel.load(REF_MODEL));
    expect(base).not.toEqual(a);
  });
});
