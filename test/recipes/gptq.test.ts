// GPTQ over a model: the block graph's captured Hessian against one computed on the host, the
// act-order checkpoint round trip (desc_act, g_idx) and the act-order graph against the
// dequantized weights, and calibration windows' bad input.

import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { calibrationWindows } from "../../src/data/calibration.js";
import { loadGptqFolder, saveGptqFolder } from "../../src/formats/quantized/index.js";
import { readJsonObject } from "../../src/core/json.js";
import { quantizedLinear } from "../../src/models/parts/quantized-linear.js";
import { defaultGptqSettings, gptqQuantize, prepareHessian } from "../../src/quant/gptq.js";
import { dequantize } from "../../src/quant/kinds/index.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import type { QuantSpec, RtnLinear } from "../../src/quant/types.js";
import { gptqQuantizeModel } from "../../src/recipes/gptq.js";
import { expectSlimtuneError, tempDir } from "../formats/helpers.js";
import { expectLinearGraph, grid, tinyModel } from "../quant/helpers.js";

const dir = tempDir("gptq-model");
const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());

const model = tinyModel("llama", 3);
const { config } = model;
const seq = 16;
const calib = Int32Array.from({ length: 8 * seq }, (_, i) => (i * 37 + 11) % config.vocabSize);
const spec: QuantSpec = { scheme: "rtn", bits: 3, groupSize: 32, symmetric: false };

describe("gptqQuantizeModel", () => {
  it("quantizes layer 0's q_proj from the Hessian of its real input (RMSNorm of the embeddings)", async () => {
    const settings = { ...defaultGptqSettings };
    const { qm, report } = await gptqQuantizeModel(model, spec, calib, { settings, trueSequential: true, seq, batch: 3 });
    expect(qm.linears.size).toBe(7);
    expect(report.layers.map((l) => l.path)).toEqual([...qm.linears.keys()]);
    expect(report.calibrationTokens).toBe(calib.length);

    // H = 2/n Σ hᵀh with h = RMSNorm(embedding) ⊙ γ, on the host in float64.
    const C = config.hiddenSize;
    const embed = model.weights.get("model.embed_tokens.weight")!.data;
    const gamma = model.weights.get("model.layers.0.input_layernorm.weight")!.data;
    const h = new Float64Array(C * C);
    for (const id of calib) {
      let ms = 0;
      for (let c = 0; c < C; c++) ms += embed[id * C + c]! ** 2 / C;
      const inv = 1 / Math.sqrt(ms + config.rmsNormEps);
      const row = Array.from({ length: C }, (_, c) => embed[id * C + c]! * inv * gamma[c]!);
      for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) h[a * C + b]! += (2 * row[a]! * row[b]!) / calib.length;
    }
    const w = model.weights.get("model.layers.0.self_attn.q_proj.weight")!;
    const direct = await gptqQuantize(w.data, w.shape[0]!, C, prepareHessian(h, C, settings), spec, { settings, gemm });
    const got = grid(qm.linears.get("model.layers.0.self_attn.q_proj"));
    let differ = 0;
    for (let i = 0; i < got.codes.length; i++) if (got.codes[i] !== direct.layer.codes[i]) differ++;
    // float32 Gram in ORT against float64 here: at most a rare code on a rounding boundary differs.
    expect(differ / got.codes.length).toBeLessThan(0.002);
  });

  it("writes act-order as desc_act true with g_idx, reads it back, and its graph equals the dequantized layer", async () => {
    const settings = { ...defaultGptqSettings, actOrder: true };
    const { qm } = await gptqQuantizeModel(model, spec, calib, { settings, trueSequential: false, seq, batch: 4 });
    const down = qm.linears.get("model.layers.0.mlp.down_proj") as RtnLinear;
    expect(down.groupIndex).toBeDefined();
    const out = path.join(dir, "act-order");
    saveGptqFolder(out, qm);
    const quant = readJsonObject(path.join(out, "config.json"), { missingFix: "" }).quantization_config as Record<string, unknown>;
    expect(quant).toMatchObject({ desc_act: true, damp_percent: 0.01, meta: { method: "gptq" } });
    const back = loadGptqFolder(out);
    for (const [p, q] of qm.linears) {
      const b = back.linears.get(p) as RtnLinear;
      expect(Array.from(b.codes)).toEqual(Array.from(grid(q).codes));
      expect(b.groupIndex ? Array.from(b.groupIndex) : null).toEqual((q as RtnLinear).groupIndex ? Array.from((q as RtnLinear).groupIndex!) : null);
    }

    // y = x·Ŵᵀ through the permuted path (fused MatMulNBits and in-graph dequantization).
    for (const fused of [true, false]) {
      await expectLinearGraph((x) => quantizedLinear(x.graph, down, "down", { fused })(x), dequantize(down), 5, down.inFeatures, down.outFeatures, 3, 9);
    }
  });

  it("refuses calibration ids outside the vocabulary and an NF4 plan", async () => {
    const bad = Int32Array.from(calib);
    bad[3] = config.vocabSize;
    await expect(gptqQuantizeModel(model, spec, bad, { settings: defaultGptqSettings, trueSequential: true, seq, batch: 2 })).rejects.toThrow(/outside the model's vocabulary/);
    await expect(gptqQuantizeModel(model, { ...spec, scheme: "nf4", bits: 4 }, calib, { settings: defaultGptqSettings, trueSequential: true, seq, batch: 2 })).rejects.toThrow(/scheme "nf4"/);
  });
});

describe("calibrationWindows", () => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);
  it("draws seeded windows of seq consecutive tokens", () => {
    const a = calibrationWindows(tokens, { samples: 4, seq: 100, seed: 1 });
    expect(a.length).toBe(400);
    for (let s = 0; s < 4; s++) for (let t = 1; t < 100; t++) expect(a[s * 100 + t]).toBe(a[s * 100]! + t);
    expect(Array.from(calibrationWindows(tokens, { samples: 4, seq: 100, seed: 1 }))).toEqual(Array.from(a));
  });
  it("refuses a text shorter than samples × seq, naming what fits", () => {
    expectSlimtuneError(() => calibrationWindows(tokens, { samples: 128, seq: 256, seed: 0, source: "calib.txt" }), "E_DATA", "1000 tokens", "128 × --calib-seq 256", "--calib-samples 3");
  });
});
