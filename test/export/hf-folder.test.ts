// `export --format hf` (export/hf-folder.ts): the adapter merged into a Hugging Face folder, as PEFT's
// merge_and_unload gives. Each merged folder is loaded back by slimtune as a plain base and scored
// against the base with its adapter on the same tokens: log-probabilities within 2e-4 (float32
// merge arithmetic) for LoRA and QLoRA → f32, PEQA's folder equal to the tuned model with its
// scales at float16 (what a GPTQ folder stores; within 2e-3 of the float32 scales), FineGates' folder
// equal to the pruned model the run itself saved. The safetensors file and config.json are checked
// against what transformers and the safetensors reader enforce (docs/formats.md §5.2, §5.4).

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { llamaParamShapes } from "../../src/arch/llama/shapes.js";
import { roundToF16 } from "../../src/core/f16.js";
import { Graph, GraphCache } from "../../src/engine/index.js";
import { exportHfFolder } from "../../src/export/hf-folder.js";
import { saveGptqFolder } from "../../src/formats/quantized/index.js";
import { defaultFineGatesOptions, fineGatesMethod } from "../../src/methods/finegates/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { qloraMethod } from "../../src/methods/qlora/index.js";
import { methodScoring, scoringFor } from "../../src/methods/registry.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { IDS, buildLmLogProbGraph } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { type LoadedBase, loadBase } from "../../src/models/load.js";
import type { ScoringModel } from "../../src/models/scoring.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { scaleName } from "../../src/quant/scales.js";
import type { QuantizedModel, RtnLinear } from "../../src/quant/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const IDS_USED = Int32Array.from({ length: 48 }, (_, i) => (i * 389 + 17) % 4096);

async function logProbs(m: ScoringModel): Promise<Float32Array> {
  const compiled = await new GraphCache().get("lp", () => buildLmLogProbGraph(m.config, m.params(new Graph()), 1, IDS_USED.length));
  const out = await compiled.run({ ...m.weightFeeds(), [IDS]: { data: BigInt64Array.from(IDS_USED, (v) => BigInt(v)), shape: [1, IDS_USED.length] } });
  return out.logprobs!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** LoRA B starts at zero (a no-op merge): give every B small values so the merge changes the model. */
function perturbB(trainable: ReadonlyMap<string, { data: Float32Array }>): void {
  for (const [name, t] of trainable) if (name.endsWith("lora_B.weight")) t.data.forEach((_, i) => (t.data[i] = 0.02 * Math.sin(0.7 * i + name.length)));
}

describe("export --format hf", () => {
  const dir = scratchDir("hf-export");
  const float: LoadedBase = { kind: "float", model: LlamaModel.load(REF_MODEL) };
  let quantized: LoadedBase;
  const qdir = path.join(dir, "q4");
  beforeAll(() => {
    saveGptqFolder(qdir, quantizeModel(LlamaModel.load(REF_MODEL), { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false }));
    quantized = loadBase(qdir);
  });

  it("float base + LoRA: a float folder whose logits are the base with the adapter's", async () => {
    const lora = loraForDenseModel(float.model as LlamaModel, { rank: 4, alpha: 8, seed: 3, targetModules: ["q_proj", "v_proj", "down_proj"] }, REF_MODEL);
    perturbB(lora.trainable);
    const adapter = path.join(dir, "lora");
    lora.save(adapter);
    const out = path.join(dir, "lora-merged");
    const r = exportHfFolder(float, adapter, out);
    expect(r.holds).toBe("float32");
    expect(r.changes).toEqual([]);
    expect(r.files).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const merged = await logProbs(baseScoring(loadBase(out)));
    const withAdapter = await logProbs(scoringFor(float, adapter));
    expect(maxAbsDiff(merged, withAdapter)).toBeLessThan(2e-4);
    // The adapter does change the model: the merge is not a copy of the base.
    expect(maxAbsDiff(merged, await logProbs(baseScoring(float)))).toBeGreaterThan(1e-3);

    // --dtype f16: every weight rounded to float16, recorded as re-rounded.
    const half = exportHfFolder(float, adapter, path.join(dir, "lora-f16"), { dtype: "f16" });
    expect(half.holds).toBe("float16");
    expect(new Set(half.changes.map((c) => `${c.kind} ${c.from} → ${c.to}`))).toEqual(new Set(["re-rounded float → F16"]));
    const f16 = LlamaModel.load(path.join(dir, "lora-f16")).weights.get("model.layers.0.self_attn.q_proj.weight")!.data;
    const f32 = LlamaModel.load(out).weights.get("model.layers.0.self_attn.q_proj.weight")!.data;
    expect(f16.every((v, i) => v === roundToF16(f32[i]!))).toBe(true);
  });

  it("writes safetensors and config.json as transformers and the safetensors reader require", () => {
    const out = path.join(dir, "lora-merged");
    const bytes = fs.readFileSync(path.join(out, "model.safetensors"));
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0); // header padded with spaces to 8 bytes (§5.4)
    const headerText = bytes.subarray(8, 8 + n).toString("utf8");
    expect(headerText.startsWith("{")).toBe(true);
    const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__?: Record<string, string> };
    expect(header.__metadata__).toEqual({ format: "pt" }); // transformers' load_state_dict checks it
    const entries = Object.entries(header).filter(([k]) => k !== "__metadata__") as Array<[string, { dtype: string; shape: number[]; data_offsets: [number, number] }]>;
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as Record<string, unknown>;
    // Exactly LlamaForCausalLM's state_dict keys and shapes (no lm_head when embeddings are tied).
    const shapes = llamaParamShapes((float.model as LlamaModel).config);
    expect(new Map(entries.map(([k, e]) => [k, e.shape]))).toEqual(new Map([...shapes].map(([k, s]) => [k, [...s]])));
    expect(config.tie_word_embeddings).toBe(true);
    expect(entries.some(([k]) => k === "lm_head.weight")).toBe(false);
    // No gaps, no overlaps, the buffer covered to the end of the file (§5.2).
    const sorted = entries.map(([, e]) => e).sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
    let end = 0;
    for (const e of sorted) {
      expect(e.dtype).toBe("F32");
      expect(e.data_offsets[0]).toBe(end);
      expect(e.data_offsets[1] - e.data_offsets[0]).toBe(e.shape.reduce((a, b) => a * b, 1) * 4);
      end = e.data_offsets[1];
    }
    expect(8 + n + end).toBe(bytes.length);
    expect(config).toMatchObject({ architectures: ["LlamaForCausalLM"], model_type: "llama", torch_dtype: "float32" });
    expect(config.quantization_config).toBeUndefined();
    const gen = JSON.parse(fs.readFileSync(path.join(out, "generation_config.json"), "utf8")) as Record<string, unknown>;
    expect(gen).toEqual(JSON.parse(fs.readFileSync(path.join(REF_MODEL, "generation_config.json"), "utf8")));
  });

  it("quantized base + QLoRA: refused without --dtype; f32 is the merge exactly (upcast), rtn re-quantizes at the base's bits", async () => {
    const qlora = qloraMethod(quantized.model as QuantizedModel, { rank: 4, alpha: 8, seed: 5, targetModules: ["q_proj", "up_proj"] });
    perturbB(qlora.trainable);
    const adapter = path.join(dir, "qlora");
    qlora.save(adapter);
    const refused = path.join(dir, "qlora-refused");
    expect(() => exportHfFolder(quantized, adapter, refused)).toThrow(/off its grid.*--dtype f32 or f16.*--dtype rtn/);
    expect(fs.existsSync(refused)).toBe(false);

    const f32 = exportHfFolder(quantized, adapter, path.join(dir, "qlora-f32"), { dtype: "f32", keepDecoded: true });
    expect(f32.holds).toBe("float32");
    expect(f32.changes.length).toBe(42);
    expect(new Set(f32.changes.map((c) => `${c.kind} ${c.from} → ${c.to}`))).toEqual(new Set(["upcast rtn 4-bit g64 asymmetric → F32"]));
    const merged = await logProbs(baseScoring(loadBase(path.join(dir, "qlora-f32"))));
    expect(maxAbsDiff(merged, await logProbs(scoringFor(quantized, adapter)))).toBeLessThan(2e-4);

    const rtn = exportHfFolder(quantized, adapter, path.join(dir, "qlora-rtn"), { dtype: "rtn" });
    expect(rtn.holds).toBe("gptq");
    expect(new Set(rtn.changes.map((c) => `${c.kind} ${c.from} → ${c.to}`))).toEqual(new Set(["re-rounded float (qlora merged) → rtn 4-bit g64 asymmetric"]));
    const back = loadBase(path.join(dir, "qlora-rtn"));
    expect(back.kind).toBe("quantized");
    for (const q of (back.model as QuantizedModel).linears.values()) expect(q.spec).toEqual({ scheme: "rtn", bits: 4, groupSize: 64, symmetric: false });
  });

  it("quantized base + PEQA: the GPTQ folder at the base's bits, codes kept, the tuned scales in it", async () => {
    const qm = quantized.model as QuantizedModel;
    const peqa = peqaMethod(qm);
    for (const t of peqa.trainable.values()) t.data.forEach((v, i) => (t.data[i] = v * (1 + 0.05 * Math.sin(i))));
    const adapter = path.join(dir, "peqa");
    peqa.save(adapter);
    const out = path.join(dir, "peqa-merged");
    const r = exportHfFolder(quantized, adapter, out);
    expect(r.holds).toBe("gptq");
    expect(new Set(r.changes.map((c) => c.kind))).toEqual(new Set(["codes kept, scales rounded to f16"]));
    // The base's GPTQ configuration, unchanged: the loaders that read the base read the merge.
    const quantConfig = (d: string) => (JSON.parse(fs.readFileSync(path.join(d, "config.json"), "utf8")) as { quantization_config: Record<string, unknown> }).quantization_config;
    expect(quantConfig(out)).toEqual(quantConfig(qdir));
    expect(quantConfig(out)).toMatchObject({ quant_method: "gptq", bits: 4, group_size: 64, sym: false, desc_act: false, checkpoint_format: "gptq" });
    const back = loadBase(out);
    expect(back.kind).toBe("quantized");
    const bq = back.model as QuantizedModel;
    for (const [p, q] of qm.linears) {
      const w = bq.linears.get(p) as RtnLinear;
      const tuned = peqa.trainable.get(scaleName(p))!;
      expect(Buffer.from(w.codes).equals(Buffer.from((q as RtnLinear).codes))).toBe(true);
      expect(Buffer.from(w.zeros).equals(Buffer.from((q as RtnLinear).zeros))).toBe(true);
      expect(w.scales.every((s, i) => s === roundToF16(tuned.data[i]!))).toBe(true);
    }
    // Reloaded = the tuned model with its scales at float16: within 2e-4 of it, within 5e-3 of float32 scales.
    const reloaded = await logProbs(baseScoring(back));
    expect(maxAbsDiff(reloaded, await logProbs(scoringFor(quantized, adapter)))).toBeLessThan(5e-3);
    for (const t of peqa.trainable.values()) t.data.forEach((v, i) => (t.data[i] = roundToF16(v)));
    expect(maxAbsDiff(reloaded, await logProbs(methodScoring(peqa)))).toBeLessThan(2e-4);
    expect(maxAbsDiff(reloaded, await logProbs(baseScoring(quantized)))).toBeGreaterThan(1e-2);
    // --dtype rtn is for a LoRA merge; PEQA keeps its grid.
    expect(() => exportHfFolder(quantized, adapter, path.join(dir, "peqa-rtn"), { dtype: "rtn" })).toThrow(/PEQA merge keeps the base's codes/);
  });

  it("a PEQA adapter on another base is refused by its fingerprint, and nothing is written", () => {
    const other = loadBase(qdir);
    const otherQm = other.model as QuantizedModel;
    const first = otherQm.linears.values().next().value as RtnLinear;
    first.codes[0] = (first.codes[0]! + 1) % 16;
    const out = path.join(dir, "peqa-other");
    expect(() => exportHfFolder(other, path.join(dir, "peqa"), out)).toThrow(/trained on another base \(fingerprint sha256:/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it("FineGates: the pruned folder the run's own finalization wrote", () => {
    const model = LlamaModel.load(REF_MODEL);
    const gates = fineGatesMethod(model, { ...defaultFineGatesOptions, targetSparsity: 0.25, seed: 0 });
    for (const [name, t] of gates.trainable) if (name.startsWith("finegates.")) t.data.forEach((_, i) => (t.data[i] = 0.5 * Math.cos(1.3 * i + name.length)));
    gates.finalize?.();
    const run = path.join(dir, "finegates-run");
    gates.save(run);
    const out = path.join(dir, "finegates-merged");
    const r = exportHfFolder(float, run, out);
    expect(r.deployed.merged).toBe("finegates");
    expect(r.changes).toEqual([]);
    const written = LlamaModel.load(out);
    const saved = LlamaModel.load(run);
    expect(written.config.layerShapes).toEqual(saved.config.layerShapes);
    expect(written.parameterCount).toBeLessThan((float.model as LlamaModel).parameterCount);
    for (const [name, w] of saved.weights) expect(Buffer.from(written.weights.get(name)!.data.buffer).equals(Buffer.from(w.data.buffer)), name).toBe(true);
  });

  it("refuses a folder without --adapter, and --dtype rtn on a float base", () => {
    expect(() => exportHfFolder(float, undefined, path.join(dir, "copy"))).toThrow(/--model is a Hugging Face folder already/);
    expect(() => exportHfFolder(float, path.join(dir, "lora"), path.join(dir, "rtn"), { dtype: "rtn" })).toThrow(/this base is float/);
    expect(fs.existsSync(path.join(dir, "copy")) || fs.existsSync(path.join(dir, "rtn"))).toBe(false);
  });
});
