// Sequence classification: TSV loading and its errors, padding invariance, and a short training run.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { tokenizeExamples, type TokenizedExample } from "../../src/data/examples.js";
import { readLabelledTsv } from "../../src/data/tsv.js";
import { Graph, GraphCache } from "../../src/engine/index.js";
import { accuracy } from "../../src/eval/classify.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { buildClsScoreGraph, HEAD, LAST } from "../../src/models/llama/cls-graphs.js";
import { IDS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { classifyTask } from "../../src/train/classify-task.js";
import { defaultTrainOptions, train } from "../../src/train/loop.js";
import { Rng } from "../../src/core/rng.js";
import { REF_MODEL, SHARED, scratchDir } from "../helpers/paths.js";
import { padBatch } from "../../src/data/cls-batches.js";

const SST2 = path.join(SHARED, "data", "sst-2");

describe("labelled TSV", () => {
  const dir = scratchDir("tsv");
  const write = (name: string, text: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text);
    return f;
  };
  it("reads SST-2", () => {
    const { examples, numLabels } = readLabelledTsv(path.join(SST2, "dev.tsv"));
    expect(examples.length).toBe(872);
    expect(numLabels).toBe(2);
  });
  it.each([
    ["a label that is not an integer", "sentence\tlabel\ngood\t1\nbad\tpositive\n", /line 3: label "positive"/],
    ["a header-only file", "sentence\tlabel\n", /no examples/],
    ["an empty file", "", /empty/],
    ["no label column", "sentence\tscore\nx\t1\n", /no "label" column/],
  ])("rejects %s with E_DATA naming the file", (_name, text, message) => {
    const f = write(`${_name.replace(/\W/g, "_")}.tsv`, text);
    expect(() => readLabelledTsv(f)).toThrow(expect.objectContaining({ code: "E_DATA", message: expect.stringMatching(message) }));
    expect(() => readLabelledTsv(f)).toThrow(f);
  });
});

describe("classification on ref-llama-5m", () => {
  let model: LlamaModel;
  let trainSet: TokenizedExample[];
  let devSet: TokenizedExample[];
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    const tok = await loadTokenizer(REF_MODEL);
    trainSet = tokenizeExamples(readLabelledTsv(path.join(SST2, "train.tsv")).examples.slice(0, 4000), tok);
    devSet = tokenizeExamples(readLabelledTsv(path.join(SST2, "dev.tsv")).examples, tok);
  });

  it("refuses data whose labels the head cannot represent", () => {
    expect(() => classifyTask(model.config, [{ ids: Int32Array.of(1, 2), label: 2 }], [], { batch: 2, maxLen: 16, numLabels: 2, padId: 0, seed: 0 })).toThrow(
      expect.objectContaining({ code: "E_DATA", message: expect.stringMatching(/label 2.*2 labels.*--num-labels 3/) }),
    );
  });

  it("padding does not change a sequence's logits", async () => {
    const head = new Float32Array(2 * 256);
    new Rng(1).fillNormal(head, 0.02);
    const logits = async (examples: TokenizedExample[]) => {
      const p = padBatch(examples, 128, 4095);
      const { graph, outputs } = buildClsScoreGraph(model.config, new DenseParams(new Graph(), model.weights, new Set()), 2, p.B, p.T);
      const { CompiledGraph } = await import("../../src/engine/index.js");
      const c = await CompiledGraph.compile(graph, outputs);
      const out = await c.run({ [IDS]: { data: p.ids, shape: [p.B, p.T] }, [LAST]: { data: p.last, shape: [p.B] }, [HEAD]: { data: head, shape: [2, 256] } });
      return Array.from(out.logits!.data as Float32Array);
    };
    const [short, long] = [devSet[0]!, devSet.find((e) => e.ids.length > 20)!];
    const together = await logits([short, long]);
    const alone = [...(await logits([short])), ...(await logits([long]))];
    together.forEach((v, i) => expect(Math.abs(v - alone[i]!)).toBeLessThan(1e-4));
  });

  it("full fine-tuning on SST-2 train lowers the dev loss", async () => {
    const task = classifyTask(model.config, trainSet, devSet.slice(0, 200), { batch: 16, maxLen: 64, numLabels: 2, padId: 4095, seed: 0 });
    const summary = await train(fullFineTuning(model), task, {
      ...defaultTrainOptions,
      steps: 20,
      lr: 1e-3,
      warmupSteps: 4,
      evalEvery: 0,
      checkpointEvery: 0,
      outDir: scratchDir("cls"),
    });
    // 80 steps reach 63 % here; 20 keep the suite fast and must already lower the dev loss.
    expect(summary.heldOutAfter!.loss).toBeLessThan(summary.heldOutBefore!.loss);
  });
});
