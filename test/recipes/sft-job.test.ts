// One code path for instruction tuning: every data format trains with LoRA, and full, QLoRA-4 and
// PEQA-4 train on prompt/completion records, each through runFinetuneJob with the loss on answers;
// held-out answer loss is reported before and after, and a few steps at a high rate lower it.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { flagDefaults } from "../../src/methods/flags.js";
import { findMethod } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { type FinetuneJob, type JobTask, runFinetuneJob } from "../../src/recipes/finetune-job.js";
import { defaultTrainOptions } from "../../src/train/loop.js";
import { copyTokenizerFiles, loadTokenizer } from "../../src/formats/tokenizer.js";
import { refModelDir, tempDir } from "../formats/helpers.js";

const tmp = tempDir("sft-job");
const qdir = path.join(tmp, "q4");

const qa = Array.from({ length: 24 }, (_, i) => ({ q: `What is ${i} plus one?`, a: `${i + 1}` }));
const files: Record<string, string> = {
  text: qa.map((x) => JSON.stringify({ text: `${x.q} ${x.a}.` })).join("\n"),
  "prompt-completion": qa.map((x, i) => JSON.stringify({ prompt: `${x.q}\nAnswer:`, completion: ` ${x.a}`, template: i % 2 ? "odd" : "even" })).join("\n"),
  alpaca: qa.map((x) => JSON.stringify({ instruction: "Add one.", input: `${x.q.split(" ")[2]}`, output: x.a })).join("\n"),
  messages: qa.map((x) => JSON.stringify({ messages: [{ role: "system", content: "Be brief." }, { role: "user", content: x.q }, { role: "assistant", content: x.a }] })).join("\n"),
};

function job(method: string, modelDir: string, format: string, steps: number, out: string): FinetuneJob {
  const dataFile = path.join(tmp, `${format}.jsonl`);
  const task: JobTask = { kind: "sft", dataFile, batch: 4, seq: 64, pack: true, trainOnPrompt: false, tooLong: "cut-prompt", heldOut: 0.25, seed: 0 };
  return {
    modelDir,
    method,
    methodOptions: flagDefaults(findMethod(method).flags),
    task,
    train: { ...defaultTrainOptions, steps, lr: 3e-3, warmupSteps: 0, evalEvery: 0, checkpointEvery: 0, outDir: path.join(tmp, out), threads: 1 },
  };
}

describe("finetune --task sft", () => {
  beforeAll(() => {
    for (const [format, text] of Object.entries(files)) fs.writeFileSync(path.join(tmp, `${format}.jsonl`), text);
    saveQuantizedFolder(qdir, quantizeModel(LlamaModel.load(refModelDir), { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false }));
    copyTokenizerFiles(refModelDir, qdir);
  });

  it.each(Object.keys(files))("trains LoRA on %s records, answer loss held out", async (format) => {
    const logs: string[] = [];
    const r = await runFinetuneJob(job("lora", refModelDir, format, 2, `lora-${format}`), { onLog: (m) => logs.push(m) });
    expect(r.data?.format).toBe(format);
    expect(r.data?.train.records).toBe(18);
    expect(r.data?.heldOut?.records).toBe(6);
    expect(logs.join("\n")).toContain("records →");
    expect(r.summary.heldOutBefore?.metrics.answer_perplexity).toBeGreaterThan(1);
    expect(r.files["adapter_model.safetensors"]).toBeGreaterThan(0);
  });

  it("trains --epochs passes: one example per row, 18 records in batches of 4 are 5 steps a pass", async () => {
    const j = job("lora", refModelDir, "prompt-completion", 100, "epochs");
    const r = await runFinetuneJob({ ...j, epochs: 2, task: { ...j.task, pack: false } as JobTask });
    expect(r.summary.steps).toBe(10);
  });

  it("scores language modelling on --eval-data instead of the tail", async () => {
    const train = path.join(tmp, "train.txt");
    const dev = path.join(tmp, "dev.txt");
    fs.writeFileSync(train, "Once upon a time there was a small model. ".repeat(40));
    fs.writeFileSync(dev, "The quick brown fox jumps over the lazy dog. ".repeat(8));
    const devTokens = (await loadTokenizer(refModelDir)).encode(fs.readFileSync(dev, "utf8")).length;
    const j = job("lora", refModelDir, "text", 1, "lm-eval");
    const r = await runFinetuneJob({ ...j, task: { kind: "lm", dataFile: train, evalFile: dev, batch: 2, seq: 32, heldOut: 0.05, evalTokens: 4096 } });
    // Non-overlapping windows of 32 over the dev text, each predicting all but its first token.
    expect(r.summary.heldOutBefore!.examples).toBe(devTokens - Math.ceil(devTokens / 32));
  });

  it.each([
    ["full", refModelDir],
    ["qlora", qdir],
    ["peqa", qdir],
  ])("trains %s on prompt/completion records and lowers the held-out answer loss", async (method, modelDir) => {
    const r = await runFinetuneJob(job(method, modelDir, "prompt-completion", 8, `${method}-pc`));
    expect(r.summary.heldOutAfter!.loss).toBeLessThan(r.summary.heldOutBefore!.loss);
  });
});
