// Hand-sized checks of the methods' plumbing (merge, QLoRA's base, the definitions of qlora, lqlora,
// full and reallm): each runs in milliseconds, so bench/mutation.mjs (folder `methods`) can run
// them once per mutant where the method matrix takes a minute.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { HostParam } from "../../src/arch/params.js";
import { fullDefinition, fullFineTuning } from "../../src/methods/full/index.js";
import { mergeLora } from "../../src/methods/lora/merge.js";
import { lqloraDefinition } from "../../src/methods/lqlora/index.js";
import { qloraDefinition, qloraMethod, quantizedLoraBase } from "../../src/methods/qlora/index.js";
import { reallmDefinition, reallmMethod } from "../../src/methods/reallm/index.js";
import { loadReallmFolder } from "../../src/formats/quantized/index.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid } from "../../src/quant/linalg/kmeans.js";
import { quantizeReallmModel } from "../../src/quant/reallm.js";
import type { QuantizedModel, ReallmLinear } from "../../src/quant/types.js";
import { AdamW } from "../../src/train/adamw.js";
import { withDefaults } from "../../src/methods/flags.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { expectSlimtuneError, tempDir } from "../formats/helpers.js";
import { tinyModel } from "../quant/helpers.js";

const UP = "model.layers.0.mlp.up_proj";
const keyA = `base_model.model.${UP}.lora_A.weight`;
const keyB = `base_model.model.${UP}.lora_B.weight`;
const param = (shape: number[], values: number[]): HostParam => ({ data: Float32Array.from(values), shape });

describe("mergeLora", () => {
  // A [r = 2, K = 3], B [N = 2, r = 2]: B·A = [[1, 2, 3], [2·1 − 4, 2·2 − 5, 2·3 − 6]] = [[1, 2, 3], [−2, −1, 0]].
  const A = () => param([2, 3], [1, 2, 3, 4, 5, 6]);
  const B = () => param([2, 2], [1, 0, 2, -1]);
  const weights = () =>
    new Map<string, HostParam>([
      [`${UP}.weight`, param([2, 3], [10, 10, 10, 0, 0, 0])],
      ["model.layers.0.mlp.down_proj.weight", param([3, 2], [1, 1, 1, 1, 1, 1])],
    ]);

  it("adds scale·B·A to the adapted weight only (B listed first, as a map may hold it)", () => {
    const w = weights();
    mergeLora(w, { scale: 0.5, tensors: new Map([[keyB, B()], [keyA, A()]]) });
    expect(Array.from(w.get(`${UP}.weight`)!.data)).toEqual([10.5, 11, 11.5, -1, -0.5, 0]);
    expect(Array.from(w.get("model.layers.0.mlp.down_proj.weight")!.data)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it("refuses keys that are not LoRA's, a missing half, an unknown module and mismatched shapes", () => {
    expectSlimtuneError(() => mergeLora(weights(), { scale: 1, tensors: new Map([[`${UP}.weight`, A()]]) }), "E_ARG", "is not a LoRA key");
    expectSlimtuneError(() => mergeLora(weights(), { scale: 1, tensors: new Map([[keyA, A()]]) }), "E_ARG", `"${keyA}" has no partner "${keyB}"`);
    const other = "base_model.model.model.layers.0.mlp.gate_proj.lora_";
    expectSlimtuneError(() => mergeLora(weights(), { scale: 1, tensors: new Map([[`${other}A.weight`, A()], [`${other}B.weight`, B()]]) }), "E_SHAPE", '"model.layers.0.mlp.gate_proj.weight", which the model does not have');
    const bad = (a: HostParam, b: HostParam) => expectSlimtuneError(() => mergeLora(weights(), { scale: 1, tensors: new Map([[keyA, a], [keyB, b]]) }), "E_SHAPE", "cannot merge", "expected A [r, K], B [N, r], W [N, K]");
    bad(A(), param([2, 1], [1, 2])); // B's rank 1 ≠ A's 2
    bad(A(), param([3, 2], [1, 2, 3, 4, 5, 6])); // N = 3 ≠ W's 2
    bad(param([2, 2], [1, 2, 3, 4]), B()); // K = 2 ≠ W's 3
    expectSlimtuneError(() => mergeLora(weights(), { scale: 1, tensors: new Map([[keyA, A()], [keyB, param([2, 1], [1, 2])]]) }), "E_SHAPE", `"${keyA}" [2, 3] and "${keyB}" [2, 1] into "${UP}.weight" [2, 3]`);
  });
});

describe("QLoRA's quantized base", () => {
  const tiny = tinyModel("llama", 3);
  const qm = quantizeModel(tiny, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });

  it("counts every weight, names each quantized layer and its sizes, and refuses other names", () => {
    const base = quantizedLoraBase(qm);
    // Linear layers: q 64·64, k 32·64, v 32·64, o 64·64, gate 128·64, up 128·64, down 64·128;
    // dense: the tied table 96·64 and three norms of 64.
    expect(base.totalParameters).toBe(4096 + 2048 + 2048 + 4096 + 8192 + 8192 + 8192 + 6144 + 192);
    expect(base.modulePaths).toEqual([...qm.linears.keys()]);
    expect(base.modulePaths).toHaveLength(7);
    expect([base.outFeatures("model.layers.0.self_attn.k_proj"), base.inFeatures("model.layers.0.self_attn.k_proj")]).toEqual([32, 64]);
    expect([base.outFeatures("model.layers.0.mlp.down_proj"), base.inFeatures("model.layers.0.mlp.down_proj")]).toEqual([64, 128]);
    expectSlimtuneError(() => base.outFeatures("model.layers.0.mlp.nope"), "E_ARG", 'no quantized linear layer "model.layers.0.mlp.nope"');
    expect(base.baseName).toBeNull();
  });

  it("qlora: LoRA branches on the targets, named qlora, scale α/r", () => {
    const m = qloraMethod(qm, { rank: 2, alpha: 6, targetModules: ["q_proj", "v_proj"], seed: 0 });
    expect(m.name).toBe("qlora");
    expect(m.scale).toBe(3);
    expect([...m.trainable.keys()].sort()).toEqual([
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
    ]);
    // The base's 43200 plus the branches: q A 2·64 + B 64·2, v A 2·64 + B 32·2.
    expect(m.totalParameters).toBe(43200 + 256 + 192);
  });

  it("the definitions: which base each needs, its learning rate, and the error on the wrong base", () => {
    const quantized: LoadedBase = { kind: "quantized", model: qm };
    const float: LoadedBase = { kind: "float", model: new LlamaModel(tiny.config, tiny.weights, null) };
    expect([qloraDefinition.needs, qloraDefinition.defaultLr]).toEqual(["quantized", 1e-3]);
    expect([lqloraDefinition.needs, lqloraDefinition.defaultLr]).toEqual(["quantized", 1e-3]);
    expect([reallmDefinition.needs, reallmDefinition.defaultLr]).toEqual(["quantized", 1e-3]);
    expect([fullDefinition.needs, fullDefinition.defaultLr]).toEqual(["float", 1e-4]);
    expect([qloraDefinition.name, lqloraDefinition.name, reallmDefinition.name, fullDefinition.name]).toEqual(["qlora", "lqlora", "reallm", "full"]);
    const opts = withDefaults(qloraDefinition.flags, { rank: 4, alpha: 8, targets: ["o_proj"] });
    const m = qloraDefinition.create(quantized, opts, { seed: 1 }) as ReturnType<typeof qloraMethod>;
    expect([m.name, m.rank, m.scale, m.targets]).toEqual(["qlora", 4, 2, ["model.layers.0.self_attn.o_proj"]]);
    expectSlimtuneError(() => qloraDefinition.create(float, opts, { seed: 1 }), "E_ARG", "--method qlora needs a quantized model folder");
    expectSlimtuneError(() => fullDefinition.create(quantized, {}, { seed: 1 }), "E_ARG", "--method full needs a float model folder");
    expectSlimtuneError(() => reallmDefinition.create(float, withDefaults(reallmDefinition.flags), { seed: 1 }), "E_ARG", "--method reallm needs a quantized model folder");
    expectSlimtuneError(() => reallmDefinition.create(quantized, withDefaults(reallmDefinition.flags), { seed: 1 }), "E_ARG", "model.layers.0.self_attn.q_proj is a rtn layer");
    expect(qloraDefinition.adapter!.detect(tempDir("qlora-detect"))).toBe(false);
  });

  it("every definition has a summary and every flag a description for finetune --help", () => {
    for (const d of [qloraDefinition, lqloraDefinition, reallmDefinition, fullDefinition]) {
      expect(d.summary.length, d.name).toBeGreaterThan(20);
      for (const [key, flag] of Object.entries(d.flags as Record<string, { description: string }>)) expect(flag.description.length, `${d.name} ${key}`).toBeGreaterThan(5);
    }
  });

  it("reallm's flags: defaults and bounds", () => {
    expect(withDefaults(reallmDefinition.flags)).toEqual({ blockSteps: 0, reference: undefined, blockLr: 1e-3, blockBatch: 4, blockSamples: 64 });
    expectSlimtuneError(() => withDefaults(reallmDefinition.flags, { blockSteps: -1 }), "E_ARG", "--block-steps -1 must be an integer >= 0");
    expectSlimtuneError(() => withDefaults(reallmDefinition.flags, { blockLr: -1 }), "E_ARG", "--block-lr -1 must be a number >= 0");
    expectSlimtuneError(() => withDefaults(reallmDefinition.flags, { blockBatch: 0 }), "E_ARG", "--block-batch 0 must be an integer >= 1");
    expectSlimtuneError(() => withDefaults(reallmDefinition.flags, { blockSamples: 0 }), "E_ARG", "--block-samples 0 must be an integer >= 1");
  });

  it("lqlora needs the adapter quantize --method lqlora wrote, and says where it looked", () => {
    const quantized: LoadedBase = { kind: "quantized", model: qm };
    expectSlimtuneError(() => lqloraDefinition.create(quantized, {}, { seed: 0 }), "E_ARG", "lqlora_adapter/ inside the model folder), and there is none;");
    const dir = tempDir("lqlora-mutants");
    const withFolder: LoadedBase = { kind: "quantized", model: { ...qm, sourceDir: dir } };
    expectSlimtuneError(() => lqloraDefinition.create(withFolder, {}, { seed: 0 }), "E_ARG", `there is none at ${path.join(dir, "lqlora_adapter")};`);
    fs.mkdirSync(path.join(dir, "lqlora_adapter"));
    expectSlimtuneError(() => lqloraDefinition.create(withFolder, {}, { seed: 0 }), "E_ARG", `there is none at ${path.join(dir, "lqlora_adapter")};`);
    expectSlimtuneError(() => lqloraDefinition.create(quantized, {}, { seed: 0, adapter: path.join(dir, "elsewhere") }), "E_ARG", `at ${path.join(dir, "elsewhere")};`);
    expectSlimtuneError(() => lqloraDefinition.create({ kind: "float", model: new LlamaModel(tiny.config, tiny.weights, null) }, {}, { seed: 0 }), "E_ARG", "--method lqlora needs a quantized model folder");
  });

  it("lqlora and qlora continue a saved adapter: from the model folder, from --adapter, and through adapter.load", () => {
    const dir = tempDir("lqlora-adapter");
    const quantized: LoadedBase = { kind: "quantized", model: { ...qm, sourceDir: dir } };
    const trained = qloraMethod(qm, { rank: 2, alpha: 4, targetModules: ["up_proj"], seed: 3 });
    trained.trainable.get(`base_model.model.${UP}.lora_B.weight`)!.data.fill(0.5);
    trained.save(path.join(dir, "lqlora_adapter"));
    const same = (m: ReturnType<typeof qloraMethod>) => expect(Array.from(m.trainable.get(`base_model.model.${UP}.lora_B.weight`)!.data).every((v) => v === 0.5)).toBe(true);
    const lq = lqloraDefinition.create(quantized, {}, { seed: 0 }) as ReturnType<typeof qloraMethod>;
    expect([lq.name, lq.targets]).toEqual(["lqlora", [UP]]);
    same(lq);
    const adapter = path.join(dir, "lqlora_adapter");
    expect(qloraDefinition.adapter!.detect(adapter)).toBe(true);
    const q = qloraDefinition.create(quantized, withDefaults(qloraDefinition.flags), { seed: 0, adapter }) as ReturnType<typeof qloraMethod>;
    expect(q.name).toBe("qlora");
    same(q);
    expectSlimtuneError(() => qloraDefinition.adapter!.load({ kind: "float", model: new LlamaModel(tiny.config, tiny.weights, null) }, adapter), "E_ARG", "--method qlora needs a quantized model folder");
    const loaded = qloraDefinition.adapter!.load(quantized, adapter) as ReturnType<typeof qloraMethod>;
    expect(loaded.name).toBe("qlora");
    same(loaded);
  });
});

describe("full fine-tuning", () => {
  it("trains every weight, decays all but norms and biases, and counts them all", () => {
    const tiny = tinyModel("qwen2", 4);
    const model = new LlamaModel(tiny.config, tiny.weights, null);
    const m = fullDefinition.create({ kind: "float", model }, {}, { seed: 0 });
    expect(m.name).toBe("full");
    expect(m.trainable).toBe(model.weights);
    expect(m.totalParameters).toBe(model.parameterCount);
    expect(m.decay("model.layers.0.self_attn.q_proj.weight")).toBe(true);
    expect(m.decay("model.layers.0.self_attn.q_proj.bias")).toBe(false);
    expect(m.decay("model.layers.0.input_layernorm.weight")).toBe(false);
    expect(fullFineTuning(model).config).toBe(model.config);
    const dir = tempDir("full-save");
    m.save(path.join(dir, "out"));
    const back = LlamaModel.load(path.join(dir, "out"));
    expect(Array.from(back.weights.get("model.layers.0.self_attn.q_proj.bias")!.data)).toEqual(Array.from(model.weights.get("model.layers.0.self_attn.q_proj.bias")!.data));
  });
});

describe("reallm tuning method", () => {
  const tiny = tinyModel("llama", 6);
  const opts = { blockSteps: 0, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 };
  const quantize = async (): Promise<QuantizedModel> => {
    const gemm = new HostGemm({ threads: 1 });
    const nearest = new NearestCentroid({ threads: 1 });
    try {
      return (await quantizeReallmModel(tiny, { budget: 4, rank: 2, seed: 0, gemm, nearest, blockSize: 32, maxIterations: 1 })).qm;
    } finally {
      await gemm.release();
      await nearest.release();
    }
  };
  /** `qm` with the layers in `paths` at rank 0 (no factors). */
  const rankZero = (qm: QuantizedModel, paths: string[]): QuantizedModel => ({
    ...qm,
    linears: new Map([...qm.linears].map(([p, q]) => [p, paths.includes(p) ? { ...(q as ReallmLinear), spec: { ...(q as ReallmLinear).spec, rank: 0 }, l1: new Float32Array(0), l2: new Float32Array(0) } : q])),
  });

  it("trains L₁ [N, r] and L₂ [r, K] of each layer with a rank, counts every weight, decays all, saves with the budget", async () => {
    const qm = await quantize();
    const down = "model.layers.0.mlp.down_proj";
    const m = reallmMethod(rankZero(qm, [down]), opts);
    expect(m.name).toBe("reallm");
    expect(m.trainable.size).toBe(12); // 6 layers with rank 2, two factors each
    expect(m.trainable.get("model.layers.0.self_attn.k_proj.lowrank_l1")!.shape).toEqual([32, 2]);
    expect(m.trainable.get("model.layers.0.self_attn.k_proj.lowrank_l2")!.shape).toEqual([2, 64]);
    expect(m.trainable.has(`${down}.lowrank_l1`)).toBe(false);
    expect(m.totalParameters).toBe(36864 + 6144 + 192);
    expect(m.decay("model.layers.0.self_attn.k_proj.lowrank_l1")).toBe(true);
    await expect(m.prepare!({ tokens: new Int32Array(100), seq: 8, seed: 0, optimizer: (p) => new AdamW(p), log: () => {} })).resolves.toBeNull();
    m.trainable.get("model.layers.0.self_attn.k_proj.lowrank_l1")!.data.fill(0.25);
    const dir = tempDir("reallm-save");
    m.save(dir);
    const back = loadReallmFolder(dir);
    expect(back.method).toEqual({ name: "reallm", config: { budget_bits_per_weight: 4 } });
    expect(Array.from((back.linears.get("model.layers.0.self_attn.k_proj") as ReallmLinear).l1).every((v) => v === 0.25)).toBe(true);
    expect((back.linears.get(down) as ReallmLinear).spec.rank).toBe(0);
  });

  it("refuses a model whose every layer has rank 0", async () => {
    const qm = await quantize();
    expectSlimtuneError(() => reallmMethod(rankZero(qm, [...qm.linears.keys()]), opts), "E_ARG", "every layer of this ReALLM model has rank 0, so nothing can train");
  });

  it("the block-wise phase reports its settings and its time in seconds", async () => {
    const qm = await quantize();
    const dir = tempDir("reallm-reference");
    new LlamaModel(tiny.config, tiny.weights, null).save(dir);
    const m = reallmMethod(qm, { blockSteps: 2, reference: dir, blockLr: 2e-3, blockBatch: 2, blockSamples: 4 });
    const tokens = Int32Array.from({ length: 200 }, (_, i) => (i * 13 + 5) % tiny.config.vocabSize);
    const started = performance.now();
    const report = (await m.prepare!({ tokens, seq: 8, seed: 0, optimizer: (p) => new AdamW(p), log: () => {} })) as { blockwise: { steps: number; lr: number; samples: number; seconds: number; blocks: unknown[] } };
    expect([report.blockwise.steps, report.blockwise.lr, report.blockwise.samples, report.blockwise.blocks.length]).toEqual([2, 2e-3, 4, 1]);
    const wall = (performance.now() - started) / 1000;
    expect(report.blockwise.seconds).toBeGreaterThan(0);
    expect(report.blockwise.seconds).toBeLessThanOrEqual(wall);
  });
});
