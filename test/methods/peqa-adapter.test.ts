// PEQA adapters: save/load, refusal on another base, and task switching on one loaded model.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { GraphCache } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadPeqaAdapter, savePeqaAdapter } from "../../src/formats/peqa-adapter.js";
import { initialScales } from "../../src/methods/peqa/index.js";
import { PeqaTasks } from "../../src/methods/peqa/tasks.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { Rng } from "../../src/core/rng.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";
import { scoringFor } from "../../src/methods/registry.js";

const tokens = Int32Array.from({ length: 1200 }, (_, i) => (i * 7919 + 13) % 4000);

describe("PEQA adapters", () => {
  let q4: QuantizedModel;
  let q3: QuantizedModel;
  let adapterDir: string;
  beforeAll(() => {
    const model = LlamaModel.load(REF_MODEL);
    q4 = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });
    q3 = quantizeModel(model, { scheme: "rtn", bits: 3, groupSize: "channel", symmetric: false });
    // A "trained" adapter: the base scales, perturbed.
    const scales = initialScales(q4);
    const rng = new Rng(1);
    for (const s of scales.values()) s.data.forEach((v, i) => (s.data[i] = v * (1 + 0.2 * (rng.uniform() - 0.5))));
    adapterDir = path.join(scratchDir("peqa-adapter"), "adapter");
    savePeqaAdapter(adapterDir, q4, scales);
  });

  it("round-trips the scales and names the base by a fingerprint of its codes", () => {
    const a = loadPeqaAdapter(adapterDir, q4);
    expect(a.scales.size).toBe(42);
    expect(a.config.base_fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(fs.statSync(path.join(adapterDir, "adapter_model.safetensors")).size).toBeLessThan(70_000);
  });

  it("refuses an adapter made for another base", () => {
    expect(() => loadPeqaAdapter(adapterDir, q3)).toThrow(expect.objectContaining({ code: "E_CONFIG", message: expect.stringMatching(/another base/) }));
  });

  it("switching tasks on one loaded model gives what loading each adapter separately gives", async () => {
    const qdir = path.join(scratchDir("peqa-base"), "q4");
    saveQuantizedFolder(qdir, q4);
    const tasks = new PeqaTasks(q4);
    tasks.add("perturbed", adapterDir);
    const base = await tasks.perplexity(tokens, { ctx: 128 });
    expect(tasks.use("perturbed")).toBeLessThan(5);
    const switched = await tasks.perplexity(tokens, { ctx: 128 });
    tasks.use("base");
    const back = await tasks.perplexity(tokens, { ctx: 128 });
    expect(back.perplexity).toBe(base.perplexity);
    expect(switched.perplexity).not.toBeCloseTo(base.perplexity, 3);
    const direct = await perplexity(scoringFor({ kind: "quantized", model: q4 }, adapterDir), new GraphCache(), tokens, { ctx: 128 });
    expect(Math.abs(direct.perplexity - switched.perplexity) / switched.perplexity).toBeLessThan(1e-5);
    // Plain RTN through MatMulNBits equals the scale-input graph with the base's own scales.
    const fused = await perplexity(scoringFor({ kind: "quantized", model: q4 }), new GraphCache(), tokens, { ctx: 128 });
    expect(Math.abs(fused.perplexity - base.perplexity) / base.perplexity).toBeLessThan(1e-4);
  });
});
