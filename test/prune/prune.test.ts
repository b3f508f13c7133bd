// Structured pruning: the surgery against the masked model, importance against finite differences
// of the loss, the ratio schedules, and the errors for bad plans and short calibration data.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { layerShape } from "../../src/arch/llama/config.js";
import { linearPath } from "../../src/arch/llama/shapes.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { type LossSource, accumulateGradients, calibrationBatches, calibrationLoss } from "../../src/prune/gradients.js";
import { type LayerScores, randomScores, scoreGroups, taskGradientAccumulator, taylorScores } from "../../src/prune/importance.js";
import { defaultPlanOptions, planPruning } from "../../src/prune/plan.js";
import { maskStructure, removeStructure } from "../../src/prune/surgery.js";
import { Rng } from "../../src/core/rng.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const B = 2;
// Scaling a slice by 1 ± 0.1: large enough that float32 rounding of the loss (~1e-6) stays below 1 % of the change.
const H_FD = 0.1;
const T = 16;
const tokens = Int32Array.from({ length: 4000 }, (_, i) => (i * 7919 + 13) % 4000);

describe("structured pruning", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  const logitsOf = async (m: LlamaModel) => {
    const { graph, outputs } = buildLmTrainGraph(m.config, new DenseParams(new Graph(), m.weights, new Set()), B, T, [], { logits: true });
    const c = await CompiledGraph.compile(graph, outputs);
    const batch = calibrationBatches({ kind: "lm", tokens, batch: B, seq: T }, 1, 3)[0]!;
    const out = await c.run(batch.feeds);
    await c.release();
    return out.logits!.data as Float32Array;
  };

  // `prune` reports the calibration loss before (from the gradients) and after (from calibrationLoss):
  // the two only compare if they score the very same batches.
  it("calibrationLoss scores the batches the gradients were taken on, and sees what pruning cost", async () => {
    const source: LossSource = { kind: "lm", tokens, batch: B, seq: T };
    const grads = await accumulateGradients(model, source, { samples: 3, seed: 9 });
    expect(await calibrationLoss(model, source, { samples: 3, seed: 9 })).toBeCloseTo(grads.meanLoss, 4);
    expect(Math.abs((await calibrationLoss(model, source, { samples: 3, seed: 10 })) - grads.meanLoss)).toBeGreaterThan(1e-3);
    const plan = planPruning(model.config, randomScores(model.config, 3), { ...defaultPlanOptions, ratio: 0.5 });
    const after = await calibrationLoss(removeStructure(model, plan.keep).model, source, { samples: 3, seed: 9 });
    expect(Math.abs(after - grads.meanLoss)).toBeGreaterThan(1e-3);
  });

  it.each(["layer", "global"] as const)("the pruned model predicts what the masked model did (%s schedule)", async (schedule) => {
    const scores = randomScores(model.config, 11);
    const plan = planPruning(model.config, scores, { ...defaultPlanOptions, schedule, ratio: 0.275, keepFirst: 1 });
    // The layer schedule at r' = 0.33 keeps 4 groups of one head: GQA's heads-within-group path.
    if (schedule === "layer") expect([plan.keep[2]!.heads.length, plan.keep[2]!.kvHeads.length]).toEqual([4, 4]);
    const { model: pruned, report } = removeStructure(model, plan.keep);
    expect(report.parametersAfter).toBeLessThan(report.parametersBefore);
    expect(report.layers[0]).toEqual({ heads: [8, 8], kvHeads: [4, 4], channels: [704, 704] });
    const masked = await logitsOf(maskStructure(model, plan.keep));
    const after = await logitsOf(pruned);
    const full = await logitsOf(model);
    let worst = 0;
    let moved = 0;
    masked.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - after[i]!));
      moved = Math.max(moved, Math.abs(v - full[i]!));
    });
    expect(worst).toBeLessThan(1e-4);
    expect(moved, "pruning must change the predictions").toBeGreaterThan(1e-2);
  });

  it("equal widths in every layer give a plain config (no per-layer shapes) that round-trips", async () => {
    const plan = planPruning(model.config, randomScores(model.config, 2), { ...defaultPlanOptions, ratio: 0.2 });
    const { model: pruned } = removeStructure(model, plan.keep);
    expect(pruned.config.layerShapes).toBeUndefined();
    expect([pruned.config.numHeads, pruned.config.numKvHeads, pruned.config.intermediateSize]).toEqual([6, 3, 576]);
    const dir = scratchDir("uniform-prune");
    pruned.save(dir);
    const raw = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
    expect(raw.slimtune_layer_shapes).toBeUndefined();
    expect([raw.num_attention_heads, raw.num_key_value_heads, raw.intermediate_size, raw.head_dim]).toEqual([6, 3, 576, 32]);
    const reloaded = LlamaModel.load(dir);
    const a = await logitsOf(pruned);
    const b = await logitsOf(reloaded);
    expect(a).toEqual(b);
  });

  describe("importance against finite differences of the loss", () => {
    const source: LossSource = { kind: "lm", tokens, batch: 1, seq: T };
    let loss: (weights: Map<string, { data: Float32Array; shape: number[] }>) => Promise<number>;
    beforeAll(async () => {
      const names = [...model.weights.keys()].filter((n) => /_proj\.weight$/.test(n));
      const { graph, outputs } = buildLmTrainGraph(model.config, new DenseParams(new Graph(), model.weights, new Set(names)), 1, T, []);
      const c = await CompiledGraph.compile(graph, { loss: outputs.loss! });
      const batch = calibrationBatches(source, 1, 5)[0]!;
      loss = async (weights) => {
        const feeds = Object.fromEntries(names.map((n) => [n, weights.get(n)!]));
        return (await c.run({ ...feeds, [IDS]: batch.feeds[IDS]!, [TARGETS]: batch.feeds[TARGETS]! })).loss!.data[0] as number;
      };
    });

    /** d/dε L(W + ε·W|slice) at 0 by central differences: the first-order loss change of scaling one slice. */
    const fdAlongSlice = async (path: string, axis: 0 | 1, start: number, count: number) => {
      const name = `${path}.weight`;
      const w = model.weights.get(name)!;
      const [N, K] = w.shape as [number, number];
      const at = (eps: number) => {
        const data = Float32Array.from(w.data);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const inside = axis === 0 ? n >= start && n < start + count : k >= start && k < start + count;
            if (inside) data[n * K + k] = w.data[n * K + k]! * (1 + eps);
          }
        }
        return new Map([...model.weights, [name, { data, shape: w.shape }]]);
      };
      const h = H_FD;
      return ((await loss(at(h))) - (await loss(at(-h)))) / (2 * h);
    };

    it("Taylor vector-wise scores equal Σ |dL/dε| over each group's slices; element-wise bounds them", async () => {
      const grads = await accumulateGradients(model, source, { samples: 1, seed: 5 });
      const vector = taylorScores(model, grads, "vector");
      const element = taylorScores(model, grads, "element");
      const D = model.config.headDim;
      const checks: Array<{ what: string; score: number; element: number; slices: Array<[string, 0 | 1, number, number]> }> = [
        { what: "layer 1 head 3", score: vector[1]!.heads[3]!, element: element[1]!.heads[3]!, slices: [[linearPath(1, "q_proj"), 0, 3 * D, D], [linearPath(1, "o_proj"), 1, 3 * D, D]] },
        { what: "layer 4 kv group 2 (own rows)", score: vector[4]!.kvOwn[2]!, element: element[4]!.kvOwn[2]!, slices: [[linearPath(4, "k_proj"), 0, 2 * D, D], [linearPath(4, "v_proj"), 0, 2 * D, D]] },
        {
          what: "layer 2 channel 100",
          score: vector[2]!.channels[100]!,
          element: element[2]!.channels[100]!,
          slices: [[linearPath(2, "gate_proj"), 0, 100, 1], [linearPath(2, "up_proj"), 0, 100, 1], [linearPath(2, "down_proj"), 1, 100, 1]],
        },
      ];
      for (const c of checks) {
        let numeric = 0;
        for (const [p, axis, start, count] of c.slices) numeric += Math.abs(await fdAlongSlice(p, axis, start, count));
        expect(numeric, `${c.what}: the probe must carry signal`).toBeGreaterThan(1e-5);
        expect(Math.abs(c.score - numeric), `${c.what}: ${c.score} vs ${numeric}`).toBeLessThan(2e-6 + 0.03 * numeric);
        expect(c.element).toBeGreaterThanOrEqual(c.score * (1 - 1e-9));
      }
    });

    it("task-gradient importance is |∂L/∂ξ| of a mask on the group's output", async () => {
      const acc = taskGradientAccumulator(model);
      await accumulateGradients(model, source, { samples: 1, seed: 5, onBatch: acc.onBatch });
      const scores = acc.finish();
      const D = model.config.headDim;
      const head = Math.abs(await fdAlongSlice(linearPath(3, "o_proj"), 1, 5 * D, D));
      expect(Math.abs(scores[3]!.heads[5]! - head)).toBeLessThan(2e-6 + 0.03 * head);
      const channel = Math.abs(await fdAlongSlice(linearPath(0, "down_proj"), 1, 42, 1));
      expect(Math.abs(scores[0]!.channels[42]! - channel)).toBeLessThan(2e-6 + 0.03 * channel);
    });
  });

  it("calibration data shorter than --samples batches is a typed error naming the shortfall", () => {
    expect(() => calibrationBatches({ kind: "lm", tokens: tokens.subarray(0, 100), batch: 2, seq: 16 }, 4, 0)).toThrow(/room for 6 windows.*needs 8/);
    const examples = [{ ids: Int32Array.of(1, 2), label: 0 }];
    expect(() => calibrationBatches({ kind: "classify", examples, batch: 2, maxLen: 8, padId: 0, numLabels: 2, head: new Float32Array(512) }, 1, 0)).toThrow(
      expect.objectContaining({ code: "E_DATA" }),
    );
  });
});

describe("ratio schedules", () => {
  // A shape-only config: 6 layers, 8 heads in 4 GQA groups, 704 channels (ref-llama-5m's widths).
  let config: LlamaModel["config"];
  let scores: LayerScores[];
  beforeAll(() => {
    config = LlamaModel.load(REF_MODEL).config;
    scores = randomScores(config, 1);
  });
  const blockParams = (keep: ReturnType<typeof planPruning>["keep"]) =>
    keep.reduce((s, k) => s + (2 * k.heads.length + 2 * k.kvHeads.length) * 32 * 256 + 3 * k.channels.length * 256, 0);
  const full = 6 * ((16 + 8) * 32 * 256 + 3 * 704 * 256);

  it.each([
    ["layer", 0.2],
    ["layer", 0.3],
    ["global", 0.2],
    ["global", 0.3],
  ] as const)("%s schedule at %s removes about that share, in multiples of 32 channels", (schedule, ratio) => {
    const plan = planPruning(config, scores, { ...defaultPlanOptions, schedule, ratio });
    const removed = 1 - blockParams(plan.keep) / full;
    expect(Math.abs(removed - ratio)).toBeLessThan(0.04);
    for (const k of plan.keep) {
      expect(k.channels.length % 32).toBe(0);
      expect(k.kvHeads.length).toBeGreaterThan(0);
    }
  });

  it("--keep-first / --keep-last leave those layers whole and prune the rest harder", () => {
    const plan = planPruning(config, scores, { ...defaultPlanOptions, ratio: 0.2, keepFirst: 1, keepLast: 1 });
    expect(plan.keep[0]!.channels.length).toBe(704);
    expect(plan.keep[5]!.heads.length).toBe(8);
    expect(plan.layerRatio).toBeCloseTo(0.3, 6);
    expect(plan.keep[2]!.channels.length).toBe(480); // round(0.7 · 704 / 32) · 32
    expect(Math.abs(1 - blockParams(plan.keep) / full - 0.2)).toBeLessThan(0.03);
  });

  it("keeps the highest-scoring groups", () => {
    const s = scoreGroups(config, (slice) => (slice.module === "down_proj" ? slice.start : 0));
    const plan = planPruning(config, s, { ...defaultPlanOptions, ratio: 0.2 });
    expect(plan.keep[0]!.channels[0]).toBe(704 - plan.keep[0]!.channels.length);
  });

  it.each([0, 1, -0.2, 1.5])("rejects --ratio %s", (ratio) => {
    expect(() => planPruning(config, scores, { ...defaultPlanOptions, ratio })).toThrow(/strictly between 0 and 1/);
  });

  it("refuses to empty a layer unless allowed, and says so", () => {
    const opts = { ...defaultPlanOptions, ratio: 0.9, channelMultiple: 352 };
    expect(() => planPruning(config, scores, opts)).toThrow(/--allow-empty-layers/);
    const plan = planPruning(config, scores, { ...opts, allowEmptyLayers: true });
    expect(plan.keep.some((k) => k.channels.length === 0)).toBe(true);
    const { model } = removeStructure(LlamaModel.load(REF_MODEL), plan.keep);
    expect(layerShape(model.config, 0).intermediateSize).toBe(0);
  });

  it("rejects keeping every layer and a ratio the pruned layers cannot give", () => {
    expect(() => planPruning(config, scores, { ...defaultPlanOptions, ratio: 0.2, keepFirst: 3, keepLast: 3 })).toThrow(/none of the 6 layers/);
    expect(() => planPruning(config, scores, { ...defaultPlanOptions, ratio: 0.6, keepFirst: 2, keepLast: 2 })).toThrow(/the most these layers can give/);
  });

  it("random scores are seeded", () => {
    expect(randomScores(config, 3)[2]!.channels).toEqual(randomScores(config, 3)[2]!.channels);
    expect(new Rng(1).uniform()).not.toBe(new Rng(2).uniform());
  });
});
