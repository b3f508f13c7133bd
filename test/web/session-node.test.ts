// The page's session, run in Node on onnxruntime-node: its training steps are train()'s (same
// batches, schedule, clipping and AdamW), and the adapter files it hands to a download are what
// Node's adapter loaders read.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { lmTask } from "../../src/train/lm-task.js";
import { train } from "../../src/train/loop.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { loadPeftAdapter } from "../../src/formats/peft.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { WebSession, defaultWebTrainOptions } from "../../src/web/session.js";
import { loadSftData } from "../../src/recipes/sft-data.js";
import { sftTask } from "../../src/train/sft-task.js";
import { SlimtuneError } from "../../src/core/errors.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { readLlamaGguf } from "../../src/formats/gguf/llama.js";
import { configFromGguf, ggufFromBytes, ggufTypeSummary } from "../../src/web/model-bytes.js";
import { deployedModel } from "../../src/export/deploy.js";
import { loadBase } from "../../src/models/load.js";
import { llamaGreedy, llamaPerplexity } from "../helpers/llama-cpp.js";
import { GraphCache } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { greedyIds } from "../helpers/tiny-families.js";
import { REF_MODEL, SHARED, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";
import { SPEC, refModelFiles } from "./ref-files.js";

const TEXT = fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 20_000);
const OPTS = { ...defaultWebTrainOptions, steps: 3, lr: 2e-3, warmupSteps: 1, minLrRatio: 0.1, batch: 2, seq: 32, heldOut: 0 };

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("the web session in Node", () => {
  it("three PEQA and three LoRA steps leave exactly the weights train() leaves", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    web.quantize(SPEC);
    const tokens = Int32Array.from((await loadTokenizer(REF_MODEL)).encode(TEXT));
    const model = LlamaModel.load(REF_MODEL);
    for (const kind of ["peqa", "lora"] as const) {
      const trainer = web.startTraining(kind, TEXT, OPTS);
      const losses: number[] = [];
      for (let i = 0; i < OPTS.steps; i++) losses.push((await trainer.step()).loss);
      const method = kind === "peqa" ? peqaMethod(quantizeModel(model, SPEC)) : loraForDenseModel(model, { rank: 8, alpha: 16, seed: 0 }, null);
      const task = lmTask(tokens, { batch: OPTS.batch, seq: OPTS.seq, heldOut: 0, evalTokens: 0 });
      const summary = await train(method, task, {
        steps: OPTS.steps, lr: OPTS.lr, warmupSteps: OPTS.warmupSteps, minLrRatio: OPTS.minLrRatio, weightDecay: 0, clip: OPTS.clip,
        accumulate: 1, seed: OPTS.seed, evalEvery: 0, checkpointEvery: 0, outDir: scratchDir(`web-train-${kind}`), resume: false, threads: 2,
      });
      expect(summary.firstLoss).toBe(losses[0]);
      expect(summary.lastLoss).toBe(losses[2]);
      for (const [name, p] of method.trainable) expect(maxAbsDiff(p.data, web.method(kind).trainable.get(name)!.data), name).toBe(0);
    }
    await web.release();
  });

  it("a LoRA adapter's download files load in Node as the same tensors", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    const trainer = web.startTraining("lora", TEXT, { ...OPTS, steps: 1 });
    await trainer.step();
    web.keepAdapter("a");
    const dir = scratchDir("web-peft");
    for (const [name, chunks] of web.adapterFiles("a")) fs.writeFileSync(path.join(dir, name), Buffer.concat(chunks));
    const loaded = loadPeftAdapter(dir, { config: web.model.config });
    expect(loaded.config.r).toBe(8);
    for (const [name, p] of web.method("lora").trainable) expect(maxAbsDiff(loaded.tensors.get(name)!.data, p.data), name).toBe(0);
    await web.release();
  });

  for (const file of ["seed-tasks-alpaca.jsonl", "seed-tasks-chat.jsonl"]) {
    it(`JSONL records (${file}) train on their answers as finetune --task sft does: three LoRA steps leave train()'s weights`, async () => {
      const jsonl = fs.readFileSync(path.join(SHARED, "data", "instructions", file), "utf8").split("\n").slice(0, 40).join("\n");
      const opts = { ...OPTS, seq: 64, heldOut: 0.1 };
      const web = WebSession.open(refModelFiles(), { threads: 2 });
      const trainer = web.startTraining("lora", jsonl, opts);
      expect(web.trainingData?.kind).toBe("sft");
      expect(web.trainingData?.summary).toMatch(/JSONL: 36 records → \d+ examples, [\d,]+ of [\d,]+ tokens carry loss \(answers only\).*; 4 records held out/);
      const losses: number[] = [];
      for (let i = 0; i < opts.steps; i++) losses.push((await trainer.step()).loss);
      const webHeld = (await trainer.evaluate())!.loss;

      const dataFile = path.join(scratchDir(`web-sft-${file}`), file);
      fs.writeFileSync(dataFile, jsonl);
      const tokenizer = await loadTokenizer(REF_MODEL);
      const sft = loadSftData(REF_MODEL, tokenizer, { dataFile, trainOnPrompt: false, tooLong: "cut-prompt", seq: opts.seq, heldOut: opts.heldOut, seed: opts.seed });
      const method = loraForDenseModel(LlamaModel.load(REF_MODEL), { rank: 8, alpha: 16, seed: 0 }, null);
      const task = sftTask(sft.train, sft.heldOut, { batch: opts.batch, seq: opts.seq, pack: true, padId: method.config.eosTokenId ?? 0 });
      const summary = await train(method, task, {
        steps: opts.steps, lr: opts.lr, warmupSteps: opts.warmupSteps, minLrRatio: opts.minLrRatio, weightDecay: 0, clip: opts.clip,
        accumulate: 1, seed: opts.seed, evalEvery: 0, checkpointEvery: 0, outDir: scratchDir(`web-sft-train-${file}`), resume: false, threads: 2,
      });
      expect(summary.firstLoss).toBe(losses[0]);
      expect(summary.lastLoss).toBe(losses[2]);
      for (const [name, p] of method.trainable) expect(maxAbsDiff(p.data, web.method("lora").trainable.get(name)!.data), name).toBe(0);
      expect(webHeld).toBeGreaterThan(0);
      await web.release();
    });
  }

  it("a malformed JSONL line is E_DATA naming the source, the line and the field", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    const bad = '{"prompt": "2+2=", "completion": "4"}\n\n{"prompt": "3+3=", "completion": 6}\n';
    const err = (() => {
      try {
        web.startTraining("lora", bad, OPTS, undefined, { source: "pairs.jsonl" });
      } catch (e) {
        return e as SlimtuneError;
      }
      throw new Error("the bad line was accepted");
    })();
    expect(err).toBeInstanceOf(SlimtuneError);
    expect(err.code).toBe("E_DATA");
    expect(err.message).toBe('pairs.jsonl: line 3: field "completion" is "6"; it must be a string');
    expect(() => web.startTraining("lora", "{not json", OPTS)).toThrow(/^the pasted text: line 1: is not valid JSON/);
    // Plain text is never parsed as records, even when asked for by name.
    web.startTraining("lora", TEXT, OPTS, undefined, { format: "text" });
    expect(web.trainingData?.kind).toBe("text");
    await web.release();
  });

  it("a GGUF file opened from bytes gives the model, tokenizer and generation Node reads from its path (Q8_0)", async () => {
    const file = path.join(scratchDir("web-gguf"), "ref-q8_0.gguf");
    const report = exportGguf({ kind: "float", model: LlamaModel.load(REF_MODEL) }, REF_MODEL, file, { dtype: "q8_0" });
    const bytes = new Uint8Array(fs.readFileSync(file));
    const gguf = ggufFromBytes(bytes, "ref-q8_0.gguf");
    expect(configFromGguf(gguf)).toEqual(readLlamaGguf(file).config);
    expect(ggufTypeSummary(gguf)).toBe(`Q8_0 × ${report.types.Q8_0}, F32 × ${report.types.F32}`); // 6 layers × 7 matrices + the embedding; the norms
    const web = WebSession.openGguf(gguf, { threads: 2 });
    expect(web.fileBytes).toBe(bytes.byteLength);
    const fromPath = readLlamaGguf(file);
    for (const [name, p] of fromPath.weights) expect(maxAbsDiff(web.model.weights.get(name)!.data, p.data), name).toBe(0);
    expect(web.tokenizer.encode(TEXT.slice(0, 2000))).toEqual((await loadTokenizer(file)).encode(TEXT.slice(0, 2000)));
    // Q8_0 rounds the weights, yet on this prompt the greedy tokens stay the float folder's.
    const fromFolder = WebSession.open(refModelFiles(), { threads: 2 });
    const [g, f] = [await web.generate("The history of the city", 12), await fromFolder.generate("The history of the city", 12)];
    expect(g.ids).toEqual(f.ids);
    // A truncated file is refused by the same checks as on disk, naming the picked file.
    expect(() => ggufFromBytes(bytes.subarray(0, bytes.length - 100), "cut.gguf")).toThrow(/^cut\.gguf: tensor ".*": data .* lies past the end of the file/);
    await web.release();
    await fromFolder.release();
  });

  it("the deployable GGUF the page downloads: LoRA merged is Node's export byte for byte and llama.cpp generates slimtune's greedy tokens; PEQA's Q4_K file scores llama.cpp's perplexity within 1 %", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    web.quantize(SPEC);
    const steps = { ...OPTS, steps: 4, lr: 1e-2 };
    for (const kind of ["lora", "peqa"] as const) {
      const trainer = web.startTraining(kind, TEXT, steps);
      for (let i = 0; i < steps.steps; i++) await trainer.step();
      web.keepAdapter(kind);
    }
    web.useBase();
    const dir = scratchDir("web-deploy");
    const prompt = web.tokenizer.encodePrompt("The history of the city");

    // LoRA: Node exports the downloaded adapter folder onto the float model as the same file.
    const lora = web.ggufFile("f32", "lora");
    expect(lora.description).toBe('LoRA adapter "lora" merged into the float model');
    const loraFile = path.join(dir, "lora.gguf");
    fs.writeFileSync(loraFile, Buffer.concat(lora.chunks));
    const adapterDir = path.join(dir, "lora-adapter");
    fs.mkdirSync(adapterDir, { recursive: true });
    for (const [name, chunks] of web.adapterFiles("lora")) fs.writeFileSync(path.join(adapterDir, name), Buffer.concat(chunks));
    const nodeFile = path.join(dir, "lora-node.gguf");
    exportGguf(deployedModel(loadBase(REF_MODEL), adapterDir).base, REF_MODEL, nodeFile, { dtype: "f32", name: "lora" });
    expect(Buffer.compare(fs.readFileSync(loraFile), fs.readFileSync(nodeFile))).toBe(0);
    const loraOurs = await greedyIds(web.deployedBase("lora").base, web.tokenizer, prompt, 12);
    expect(await llamaGreedy(loraFile, prompt, 12)).toEqual(loraOurs);

    // PEQA: the tuned scales in the 4-bit layers, each rounded onto Q4_K (layer-bits: g64 has no ggml type of its own).
    // llama.cpp's Q4_K kernels round activations to 8 bits, so near-tied greedy choices can flip:
    // compared as the k-quant tests do, by perplexity on the file read back (within 1 %).
    const peqa = web.ggufFile("layer-bits", "peqa");
    // 6 layers × 6 matrices; down_proj's rows of 704 are not whole 256-blocks, so llama.cpp's fallback (Q5_0) as llama-quantize does.
    expect([peqa.report.types.Q4_K, peqa.report.types.Q5_0]).toEqual([36, 6]);
    const peqaFile = path.join(dir, "peqa.gguf");
    fs.writeFileSync(peqaFile, Buffer.concat(peqa.chunks));
    const tokens = Int32Array.from(web.tokenizer.encode(TEXT)).subarray(0, 1024);
    const ours = (await perplexity(baseScoring(loadBase(peqaFile)), new GraphCache(), tokens, { ctx: 256 })).perplexity;
    const theirs = await llamaPerplexity(peqaFile, tokens, 256);
    console.log(`PEQA GGUF (Q4_K): perplexity ${ours.toFixed(3)} in slimtune on the file, ${theirs.toFixed(3)} in llama.cpp`);
    expect(Math.abs(theirs / ours - 1)).toBeLessThan(0.01);
    await web.release();
  }, 600_000); // llama.cpp runs two files; minutes on a busy machine

  it("adapters loaded from their files (PEFT LoRA, PEQA) switch in as the adapters that wrote them; a mismatched one is refused", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    web.quantize(SPEC);
    const steps = { ...OPTS, steps: 2, lr: 1e-2 };
    for (const kind of ["lora", "peqa"] as const) {
      const trainer = web.startTraining(kind, TEXT, steps);
      for (let i = 0; i < steps.steps; i++) await trainer.step();
      web.keepAdapter(kind);
    }
    const bytes = (name: string) => new Map([...web.adapterFiles(name)].map(([f, chunks]) => [f, new Uint8Array(Buffer.concat(chunks))]));
    const expected = new Map<string, number[]>();
    for (const kind of ["lora", "peqa"]) {
      web.useAdapter(kind);
      expected.set(kind, (await web.generate("The history of the city", 12)).ids);
    }
    // A second page session (same model, same 4-bit settings) loads both from their files.
    const other = WebSession.open(refModelFiles(), { threads: 2 });
    other.quantize(SPEC);
    expect(other.loadAdapterFiles("from-peft", bytes("lora"))).toBe("lora");
    expect((await other.generate("The history of the city", 12)).ids).toEqual(expected.get("lora"));
    expect(other.loadAdapterFiles("from-peqa", bytes("peqa"))).toBe("peqa");
    expect((await other.generate("The history of the city", 12)).ids).toEqual(expected.get("peqa"));
    other.useAdapter("from-peft");
    expect((await other.generate("The history of the city", 12)).ids).toEqual(expected.get("lora"));
    expect(expected.get("lora")).not.toEqual(expected.get("peqa"));
    // A PEQA adapter of another 4-bit base (group 32) is refused by its fingerprint; a lone config names the missing file.
    const g32 = WebSession.open(refModelFiles(), { threads: 2 });
    g32.quantize({ ...SPEC, groupSize: 32 });
    expect(() => g32.loadAdapterFiles("x", bytes("peqa"))).toThrow(/^peqa_adapter\.json: adapter was trained on another base/);
    expect(() => g32.loadAdapterFiles("x", new Map([["adapter_config.json", bytes("lora").get("adapter_config.json")!]]))).toThrow(/adapter_model\.safetensors is missing/);
    for (const s of [web, other, g32]) await s.release();
  }, 300_000);
});
