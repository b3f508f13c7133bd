// Budget accounting for mixed precision: the bytes predicted for an allocation are the bytes the
// GPTQ folder stores, on a pruned model with per-layer widths; the budget's bounds; the greedy
// starting allocation.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { randomScores } from "../../src/prune/importance.js";
import { defaultPlanOptions, planPruning } from "../../src/prune/plan.js";
import { removeStructure } from "../../src/prune/surgery.js";
import { greedyAllocation } from "../../src/quant/allocation.js";
import { type Allocation, type BaseSpec, allocationAvgBits, allocationBytes, allocationPlan, budgetModel, checkBudget, fitsBudget, parseBitChoices } from "../../src/quant/budget.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { sizeReport } from "../../src/quant/size.js";
import type { QuantBits } from "../../src/quant/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

describe("memory budget", () => {
  let pruned: LlamaModel;
  beforeAll(() => {
    const model = LlamaModel.load(REF_MODEL);
    const plan = planPruning(model.config, randomScores(model.config, 4), { ...defaultPlanOptions, ratio: 0.3, keepFirst: 1 });
    pruned = removeStructure(model, plan.keep).model;
  });

  it.each([
    [{ scheme: "rtn", groupSize: 32, symmetric: false }, [2, 3, 4, 8, 3, 2]],
    [{ scheme: "rtn", groupSize: "channel", symmetric: true }, [8, 4, 2, 2, 3, 4]],
  ] as Array<[BaseSpec, QuantBits[]]>)("predicts every stored byte of the GPTQ folder (%o)", (base, alloc) => {
    const bm = budgetModel(pruned, base);
    const predicted = allocationBytes(bm, alloc);
    const qm = quantizeModel(pruned, allocationPlan(bm, alloc));
    const report = sizeReport(qm);
    expect(report.mixed).toBe(true);
    expect(predicted).toBe(report.totalBytes);
    const dir = scratchDir("budget");
    saveQuantizedFolder(dir, qm);
    const file = path.join(dir, "model.safetensors");
    const header = Number(fs.readFileSync(file).readBigUInt64LE(0));
    expect(predicted).toBe(fs.statSync(file).size - 8 - header);
    // The float tensors are counted once, at F32.
    expect(bm.fixedBytes).toBe(report.denseBytes);
    const weights = bm.weights.reduce((a, b) => a + b, 0);
    expect(allocationAvgBits(bm, alloc)).toBeCloseTo(alloc.reduce((s, b, u) => s + b * bm.weights[u]!, 0) / weights, 12);
  });

  it("bounds the budget: below the all-2-bit model or above the float model is a typed error naming the limit", () => {
    const bm = budgetModel(pruned, { scheme: "rtn", groupSize: 32, symmetric: false });
    const min = allocationBytes(bm, bm.units.map(() => 2));
    expect(() => checkBudget(bm, { kind: "bytes", limit: min - 1 })).toThrow(/below the smallest allocation.*pass at least/);
    expect(() => checkBudget(bm, { kind: "bytes", limit: bm.floatBytes + 1 })).toThrow(/above the float model/);
    expect(() => checkBudget(bm, { kind: "avg-bits", limit: 9 })).toThrow(/between the narrowest and widest/);
    expect(() => checkBudget(bm, { kind: "bytes", limit: min })).not.toThrow();
    expect(() => parseBitChoices([2, 5])).toThrow(/one of 2, 3, 4, 8/);
  });

  it("the greedy start meets the budget, cannot be upgraded, and finds the brute-force optimum on a convex case", () => {
    const bm = budgetModel(pruned, { scheme: "rtn", groupSize: 32, symmetric: false });
    // Sensitivity ∝ importance · 4^−b (quantization noise falls 4× per bit); importance differs per layer.
    const importance = [5, 1, 3, 0.5, 2, 8];
    const sens = bm.units.map((_, u) => bm.choices.map((b) => importance[u]! * 4 ** -b * bm.weights[u]!));
    const budget = { kind: "bytes" as const, limit: allocationBytes(bm, bm.units.map(() => 3)) };
    const alloc = greedyAllocation(bm, budget, sens);
    expect(fitsBudget(bm, budget, alloc)).toBe(true);
    for (let u = 0; u < alloc.length; u++) {
      const up = bm.choices.find((b) => b > alloc[u]!);
      if (up) expect(fitsBudget(bm, budget, alloc.map((b, j) => (j === u ? up : b)) as Allocation)).toBe(false);
    }
    let best = Infinity;
    const cost = (a: Allocation) => a.reduce((s, b, u) => s + sens[u]![bm.choices.indexOf(b)]!, 0);
    const walk = (prefix: QuantBits[]) => {
      if (prefix.length === bm.units.length) {
        if (fitsBudget(bm, budget, prefix)) best = Math.min(best, cost(prefix));
        return;
      }
      for (const b of bm.choices) walk([...prefix, b]);
    };
    walk([]);
    expect(cost(alloc)).toBeLessThanOrEqual(best * 1.05);
    expect(alloc[5]).toBeGreaterThan(alloc[3]!); // the most sensitive layer gets more bits than the least
  });
});
