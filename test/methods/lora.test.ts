// LoRA on ref-llama-5m: B = 0 equals the base, the trainable count, a few training steps learn
// without touching the base, save → load reproduces the logits, and merging equals the adapter.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, GraphCache, type HostTensor } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { PEFT_WEIGHTS_FILE, loadPeftAdapter, loraKeys, savePeftAdapter } from "../../src/formats/peft.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { type LoraMethod, denseLoraBase, loraForDenseModel, loraFromAdapter, loraMethod, mergeLora } from "../../src/methods/lora/index.js";
import { methodScoring } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { frozenScoring } from "../../src/models/llama/scoring.js";
import { lmTask } from "../../src/train/lm-task.js";
import { defaultTrainOptions, train } from "../../src/train/loop.js";
import { Rng } from "../../src/core/rng.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { REF_MODEL, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";
import type { ParamSource } from "../../src/arch/params.js";

const T = 32;
let tokens: Int32Array;
let model: LlamaModel; // never trained: every test's base

beforeAll(async () => {
  const tok = await loadTokenizer(REF_MODEL);
  tokens = Int32Array.from(tok.encode(fs.readFileSync(WIKITEXT_VALID, "utf8")));
  model = LlamaModel.load(REF_MODEL);
});

/** Logits [2·T, V] for two fixed windows of the data. */
async function logits(params: (g: Graph) => ParamSource, feeds: ReadonlyMap<string, HostTensor> = new Map()): Promise<Float32Array> {
  const p = params(new Graph());
  const { graph, outputs } = buildLmTrainGraph(model.config, p, 2, T, [], { logits: true });
  const compiled = await CompiledGraph.compile(graph, outputs, { threads: 2 });
  const ids = BigInt64Array.from([...tokens.subarray(1000, 1000 + T), ...tokens.subarray(5000, 5000 + T)], BigInt);
  const out = await compiled.run({ ...Object.fromEntries(feeds), [IDS]: { data: ids, shape: [2, T] }, [TARGETS]: { data: ids, shape: [2 * T] } }, ["logits"]);
  await compiled.release();
  return out.logits!.data as Float32Array;
}

const baseLogits = () => logits((g) => new DenseParams(g, model.weights, new Set()));
const methodLogits = (m: LoraMethod) => logits((g) => m.params(g), m.trainable);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Bit-identical arrays (vitest's toEqual walks typed arrays element by element: seconds per million). */
function identical(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Fills every B with N(0, 0.02²) so the adapter changes the output. */
function randomizeB(m: LoraMethod, seed: number): void {
  const rng = new Rng(seed);
  for (const [k, t] of m.trainable) if (k.endsWith("lora_B.weight")) rng.fillNormal(t.data, 0.02);
}

describe("LoRA method", () => {
  it("trains Σ r·(K+N) parameters over the 7 targets of every layer, A ~ N(0, 1/K), B = 0", () => {
    const m = loraForDenseModel(model, { rank: 8, alpha: 16, seed: 1 });
    // ref-llama-5m: C 256, 8 q-heads and 4 kv-heads of 32, MLP 704. K + N per layer:
    // q 256+256, k 256+128, v 256+128, o 256+256, gate 256+704, up 256+704, down 704+256 = 4672.
    const expected = 6 * 8 * (512 + 384 + 384 + 512 + 960 + 960 + 960);
    expect(expected).toBe(224_256);
    let count = 0;
    for (const t of m.trainable.values()) count += t.data.length;
    expect(count).toBe(expected);
    expect(m.trainable.size).toBe(6 * 7 * 2);
    expect(m.totalParameters).toBe(model.parameterCount + expected);
    expect(m.scale).toBe(2);
    expect(m.decay("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight")).toBe(true);

    const { a, b } = loraKeys("model.layers.5.mlp.down_proj");
    expect(m.trainable.get(a)!.shape).toEqual([8, 704]);
    expect(m.trainable.get(b)!.shape).toEqual([256, 8]);
    expect(m.trainable.get(b)!.data.every((x) => x === 0)).toBe(true);
    const A = m.trainable.get(a)!.data;
    const std = Math.sqrt(A.reduce((s, x) => s + x * x, 0) / A.length);
    expect(std).toBeGreaterThan(0.9 / Math.sqrt(704));
    expect(std).toBeLessThan(1.1 / Math.sqrt(704));
    // seeded: same seed, same A; another seed, another A
    expect(loraForDenseModel(model, { rank: 8, alpha: 16, seed: 1 }).trainable.get(a)!.data).toEqual(A);
    expect(loraForDenseModel(model, { rank: 8, alpha: 16, seed: 2 }).trainable.get(a)!.data).not.toEqual(A);
  });

  it("matches targets as PEFT does and rejects names that match nothing", () => {
    const m = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 0, targetModules: ["q_proj", "v_proj"], useRslora: true });
    expect(m.targets).toHaveLength(12);
    expect(m.targets.slice(0, 2)).toEqual(["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"]);
    expect(m.scale).toBe(8 / 2);
    const regex = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 0, targetModules: "model\\.layers\\.[01]\\.mlp\\..*" });
    expect(regex.targets).toHaveLength(6);
    expectSlimtuneError(() => loraForDenseModel(model, { rank: 4, alpha: 8, seed: 0, targetModules: ["q_proj", "qproj"] }), "E_ARG", '"qproj"', "q_proj, k_proj");
    expectSlimtuneError(() => loraForDenseModel(model, { rank: 0, alpha: 8, seed: 0 }), "E_ARG", "--rank 0");
    expectSlimtuneError(() => loraForDenseModel(model, { rank: 4, alpha: -1, seed: 0 }), "E_ARG", "--alpha -1");
  });

  it("with B = 0 gives exactly the base model's logits and perplexity", async () => {
    const m = loraForDenseModel(model, { rank: 8, alpha: 16, seed: 3 });
    expect(identical(await methodLogits(m), await baseLogits())).toBe(true);
    // and as a ScoringModel (what `eval --adapter` runs): the same perplexity as the frozen base
    const sample = tokens.subarray(0, 1025);
    const viaLora = await perplexity(methodScoring(m), new GraphCache(), sample, { ctx: 128 });
    const viaBase = await perplexity(frozenScoring(model), new GraphCache(), sample, { ctx: 128 });
    expect(viaLora.meanNll).toBe(viaBase.meanNll);
  });

  it("saves a PEFT adapter that loads back to the same logits, and merging gives them within 1e-4", async () => {
    const m = loraForDenseModel(model, { rank: 8, alpha: 16, seed: 4 });
    randomizeB(m, 5);
    const adapterLogits = await methodLogits(m);
    const base = await baseLogits();
    expect(maxAbsDiff(adapterLogits, base)).toBeGreaterThan(1e-2); // the adapter does something

    const dir = path.join(scratchDir("lora-save"), "adapter");
    m.save(dir);
    const loaded = loadPeftAdapter(dir, { config: model.config });
    expect(loaded.config).toMatchObject({ r: 8, loraAlpha: 16, useRslora: false, baseModelNameOrPath: path.resolve(REF_MODEL) });
    expect(loaded.raw.target_modules).toEqual(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]);
    const resumed = loraFromAdapter(denseLoraBase(model), dir);
    expect(resumed.trainable.get(loraKeys("model.layers.2.self_attn.k_proj").b)!.data).toEqual(m.trainable.get(loraKeys("model.layers.2.self_attn.k_proj").b)!.data);
    expect(identical(await methodLogits(resumed), adapterLogits)).toBe(true);

    const merged = LlamaModel.load(REF_MODEL);
    mergeLora(merged.weights, { scale: m.scale, tensors: m.trainable });
    expect(identical(merged.weights.get("model.norm.weight")!.data, model.weights.get("model.norm.weight")!.data)).toBe(true);
    expect(identical(merged.weights.get("model.layers.0.mlp.up_proj.weight")!.data, model.weights.get("model.layers.0.mlp.up_proj.weight")!.data)).toBe(false);
    const mergedLogits = await logits((g) => new DenseParams(g, merged.weights, new Set()));
    expect(maxAbsDiff(mergedLogits, adapterLogits)).toBeLessThan(1e-4);
  });

  it("refuses an adapter whose tensors do not fit the base, naming the file and key", () => {
    const dir = path.join(scratchDir("lora-bad"), "adapter");
    const { a, b } = loraKeys("model.layers.0.self_attn.k_proj");
    savePeftAdapter(dir, { r: 4, loraAlpha: 8, targetModules: ["k_proj"], baseModelNameOrPath: null }, new Map([
      [a, { data: new Float32Array(4 * 256), shape: [4, 256] }],
      [b, { data: new Float32Array(256 * 4), shape: [256, 4] }], // k_proj is [128, 256]
    ]));
    expectSlimtuneError(() => loraFromAdapter(denseLoraBase(model), dir), "E_SHAPE", path.join(dir, PEFT_WEIGHTS_FILE), b, "[128, 4]");
    // Right shapes, but target_modules covers k_proj in all 6 layers and only layer 0 has tensors.
    savePeftAdapter(dir, { r: 4, loraAlpha: 8, targetModules: ["k_proj"], baseModelNameOrPath: null }, new Map([
      [a, { data: new Float32Array(4 * 256), shape: [4, 256] }],
      [b, { data: new Float32Array(128 * 4), shape: [128, 4] }],
    ]));
    expectSlimtuneError(() => loraFromAdapter(denseLoraBase(model), dir), "E_CONFIG", PEFT_WEIGHTS_FILE, loraKeys("model.layers.1.self_attn.k_proj").a);
    savePeftAdapter(dir, { r: 4, loraAlpha: 8, targetModules: ["k_proj", "lm_head"], baseModelNameOrPath: null }, new Map([
      [a, { data: new Float32Array(4 * 256), shape: [4, 256] }],
      [b, { data: new Float32Array(128 * 4), shape: [128, 4] }],
    ]));
    expectSlimtuneError(() => loraFromAdapter(denseLoraBase(model), dir), "E_CONFIG", "adapter_config.json", '"lm_head" matches no linear layer');
  });

  it("a few training steps lower the held-out loss and leave the base weights untouched", async () => {
    const trained = LlamaModel.load(REF_MODEL);
    const m = loraMethod(denseLoraBase(trained), { rank: 8, alpha: 16, seed: 0 });
    const task = lmTask(tokens, { batch: 4, seq: 64, heldOut: 0.02, evalTokens: 2048 });
    const summary = await train(m, task, {
      ...defaultTrainOptions,
      steps: 5,
      lr: 1e-3,
      warmupSteps: 1,
      evalEvery: 0,
      checkpointEvery: 0,
      outDir: scratchDir("lora-train"),
    });
    expect(summary.steps).toBe(5);
    expect(summary.trainableParameters).toBe(224_256);
    expect(summary.heldOutAfter!.loss).toBeLessThan(summary.heldOutBefore!.loss);
    for (const [name, w] of model.weights) expect(identical(trained.weights.get(name)!.data, w.data), name).toBe(true);
    const b = m.trainable.get(loraKeys("model.layers.0.self_attn.q_proj").b)!.data;
    expect(b.some((x) => x !== 0)).toBe(true);
  });
});
