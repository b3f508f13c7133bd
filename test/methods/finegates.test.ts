// FineGates: gate gradients against finite differences, and physical removal that leaves the
// gated model's predictions unchanged.

import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { fineGatesMethod, defaultFineGatesOptions, type FineGatesMethod } from "../../src/methods/finegates/index.js";
import { channelGate, headGate, residualGate } from "../../src/methods/finegates/gated-params.js";
import { buildLmTrainGraph, gradName, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { Rng } from "../../src/core/rng.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const B = 1;
const T = 12;
const ids = BigInt64Array.from({ length: T }, (_, i) => BigInt((i * 37 + 11) % 4000));
const targets = BigInt64Array.from({ length: T }, (_, i) => BigInt((i * 53 + 7) % 4000));
const batch = { [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } };

describe("FineGates", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  it.each([0, 4])("gate gradients (lora rank %i) match finite differences of loss + penalty", async (loraRank) => {
    const method = fineGatesMethod(model, { ...defaultFineGatesOptions, loraRank, lambda: 0.5, sigma: 0.5, targetSparsity: 0.3, seed: 3 });
    const rng = new Rng(5);
    // Keep every gate well inside (0, 1) (μ + 0.5 ∈ (0.3, 0.6), noise std 0.05) so no probe crosses the clamp.
    for (const [name, p] of method.trainable) if (name.startsWith("finegates.")) p.data.forEach((_, i) => (p.data[i] = -0.2 + 0.3 * rng.uniform()));
    const noise = method.stepFeeds!(new Rng(9));
    for (const t of Object.values(noise)) (t.data as Float32Array).forEach((v, i, a) => (a[i] = v * 0.1));
    const names = [...method.trainable.keys()];
    const { graph, outputs } = buildLmTrainGraph(model.config, method.params(new Graph(), "train"), B, T, names);
    const compiled = await CompiledGraph.compile(graph, outputs);
    const feeds = { ...Object.fromEntries(method.trainable), ...noise, ...batch };
    const out = await compiled.run(feeds);
    const total = async () => {
      const o = await compiled.run(feeds, ["loss", "penalty"]);
      return (o.loss!.data[0] as number) + (o.penalty!.data[0] as number);
    };
    // Directional derivatives along a random ±1 direction over a whole tensor: the signal is large
    // enough for float32 differences (single entries drown in rounding).
    const probes = [
      channelGate("model.layers.0"),
      headGate("model.layers.2"),
      residualGate("model.layers.5.mlp.up_proj", "col"),
      residualGate("model.layers.3.mlp.down_proj", "row"),
      ...(loraRank ? ["base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight"] : []),
    ];
    for (const name of probes) {
      const data = method.trainable.get(name)!.data;
      const keep = Float32Array.from(data);
      const dir = Float32Array.from(data, () => (rng.uniform() < 0.5 ? -1 : 1));
      const g = out[gradName(name)]!.data as Float32Array;
      const analytic = g.reduce((s, v, i) => s + v * dir[i]!, 0);
      // A step that moves the loss by ~5e-3 (float32 rounding of the loss is ~1e-5) but keeps
      // every gate inside (0, 1).
      const h = Math.min(0.05, 2.5e-3 / Math.max(Math.abs(analytic), 1e-6));
      data.forEach((_, i) => (data[i] = keep[i]! + h * dir[i]!));
      const up = await total();
      data.forEach((_, i) => (data[i] = keep[i]! - h * dir[i]!));
      const down = await total();
      data.set(keep);
      const numeric = (up - down) / (2 * h);
      expect(Math.abs(numeric), `${name}: the probe must carry signal`).toBeGreaterThan(1e-3);
      expect(Math.abs(analytic - numeric), `${name}: ${analytic} vs ${numeric}`).toBeLessThan(1e-4 + 5e-3 * Math.abs(numeric));
    }
  });

  describe("physical removal", () => {
    let method: FineGatesMethod;
    beforeAll(() => {
      method = fineGatesMethod(model, { ...defaultFineGatesOptions, loraRank: 4, seed: 1 });
      const rng = new Rng(2);
      const set = (name: string, from: number, to: number, v: number) => method.trainable.get(name)!.data.fill(v, from, to);
      for (const [name, p] of method.trainable) {
        // Random open/partly open gates everywhere, some closed outright.
        if (name.startsWith("finegates.")) p.data.forEach((_, i) => (p.data[i] = rng.uniform() < 0.1 ? -0.7 : rng.uniform() * 0.8 - 0.2));
        else if (name.includes("lora_B")) rng.fillNormal(p.data, 0.01);
      }
      // Layer 0: heads 1, 6 and 7 closed (6 and 7 make up kv group 3); others open.
      set(headGate("model.layers.0"), 0, 8, 0.3);
      set(headGate("model.layers.0"), 1, 2, -0.6);
      set(headGate("model.layers.0"), 6, 8, -0.9);
      // Layer 1: every head closed; layer 2: every MLP channel closed.
      set(headGate("model.layers.1"), 0, 8, -0.5);
      set(channelGate("model.layers.2"), 0, 704, -0.5);
    });

    it("removes heads, key/value groups and MLP channels by the structure rules", () => {
      const { report } = method.prune();
      const l0 = report.layers[0]!;
      expect(l0.kvHeads).toEqual([4, 3]);
      expect(l0.heads[1]).toBe(6); // groups stay equal: head 1's group keeps it as padding
      expect(report.layers[1]!.heads).toEqual([8, 0]);
      expect(report.layers[2]!.channels).toEqual([704, 0]);
      expect(report.layers[3]!.channels[1]).toBeLessThan(704);
      expect(report.parametersAfter).toBeLessThan(report.parametersBefore);
    });

    it("the pruned model predicts exactly what the gated model does, and survives save/load", async () => {
      const logits = async (params: DenseParams | ReturnType<FineGatesMethod["params"]>, feeds: Record<string, { data: Float32Array; shape: number[] }>) => {
        const { graph, outputs } = buildLmTrainGraph(model.config, params, B, T, [], { logits: true });
        const c = await CompiledGraph.compile(graph, outputs);
        return (await c.run({ ...feeds, ...batch })).logits!.data as Float32Array;
      };
      const gated = await logits(method.params(new Graph(), "eval"), Object.fromEntries(method.trainable));
      const dir = scratchDir("pruned");
      method.save(dir);
      const pruned = LlamaModel.load(dir);
      expect(pruned.config.layerShapes![1]!.numHeads).toBe(0);
      const { graph, outputs } = buildLmTrainGraph(pruned.config, new DenseParams(new Graph(), pruned.weights, new Set()), B, T, [], { logits: true });
      const c = await CompiledGraph.compile(graph, outputs);
      const after = (await c.run(batch)).logits!.data as Float32Array;
      let worst = 0;
      gated.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - after[i]!))));
      expect(worst).toBeLessThan(1e-4);
    });
  });

  it("hardening closes the lowest channels and whole key/value groups up to the target, and removal then matches", async () => {
    const method = fineGatesMethod(model, { ...defaultFineGatesOptions, targetSparsity: 0.3, seed: 4 });
    const rng = new Rng(8);
    for (const [name, p] of method.trainable) p.data.forEach((_, i) => (p.data[i] = rng.uniform() - 0.3));
    method.hardenGates();
    const { report } = method.prune();
    for (const l of report.layers) {
      expect(l.channels[1]).toBe(704 - Math.round(0.3 * 704));
      expect(l.kvHeads[1]).toBe(3); // round(0.3 · 4) = 1 group of 2 heads
      expect(l.heads[1]).toBe(6);
    }
  });

  it.each([0, 1, -0.1, 1.5])("rejects target sparsity %s", (t) => {
    expect(() => fineGatesMethod(model, { ...defaultFineGatesOptions, targetSparsity: t, seed: 0 })).toThrow(expect.objectContaining({ code: "E_ARG" }));
  });
});
