// Mixed precision keeps the best Bayesian-optimisation trial. The trial evaluator (quantize + LoRA
// recovery in real runs) is replaced by a fake objective with a known optimum, and the run is given
// enough trials to evaluate every maximal allocation, so the answer is known exactly.

import { beforeAll, describe, expect, it, vi } from "vitest";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { tokenizeFile } from "../../src/data/text-file.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { type Allocation, allocationAvgBits, allocationBytes, budgetModel, fitsBudget, uniformAllocation } from "../../src/quant/budget.js";
import { isMaximal } from "../../src/recipes/mixed-precision/bayes-opt.js";
import { type MixedPrecisionOptions, allocateBits } from "../../src/recipes/mixed-precision/index.js";
import { defaultRecovery } from "../../src/recipes/mixed-precision/trial.js";
import type { TrialEvaluator } from "../../src/recipes/mixed-precision/workers.js";
import { REF_MODEL, WIKITEXT_VALID } from "../helpers/paths.js";

// Unit i costs WEIGHTS[i] · 2^−bits: the best allocation spends bits on units 0 and 2.
const WEIGHTS = [5, 1, 3, 0.5, 2, 1];
const fakeLoss = (bits: Allocation) => bits.reduce((s, b, i) => s + WEIGHTS[i]! * 2 ** -b, 0);

vi.mock("../../src/recipes/mixed-precision/workers.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/recipes/mixed-precision/workers.js")>();
  const { budgetModel: bmOf, allocationBytes: bytesOf, allocationAvgBits: avgOf } = await import("../../src/quant/budget.js");
  const { LlamaModel: Model } = await import("../../src/models/llama/model.js");
  return {
    ...real,
    sequentialEvaluator: async (setup: { modelDir: string; base: Parameters<typeof bmOf>[1]; choices: Parameters<typeof bmOf>[2] }): Promise<TrialEvaluator> => {
      const bm = bmOf(Model.load(setup.modelDir), setup.base, setup.choices);
      return {
        budget: bm,
        evaluate: async (allocs) =>
          allocs.map((bits) => ({ bits, bytes: bytesOf(bm, bits), avgBits: avgOf(bm, bits), lossBefore: fakeLoss(bits) + 1, loss: fakeLoss(bits), metrics: {}, seconds: 0 })),
        close: async () => {},
      };
    },
  };
});

describe("mixed precision keeps the best trial", () => {
  let model: LlamaModel;
  let opts: MixedPrecisionOptions;
  let maximal: Allocation[];

  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    const base = { scheme: "rtn" as const, groupSize: 32, symmetric: false };
    const choices = [2, 3, 4, 8] as const;
    const bm = budgetModel(model, base, [...choices]);
    const budget = { kind: "bytes" as const, limit: allocationBytes(bm, uniformAllocation(bm, 3)) };
    const space = { units: bm.units.length, choices: bm.choices, fits: (a: Allocation) => fitsBudget(bm, budget, a) };
    maximal = [];
    const walk = (prefix: Allocation) => {
      if (prefix.length === space.units) {
        if (space.fits(prefix) && isMaximal(space, prefix)) maximal.push([...prefix]);
        return;
      }
      for (const b of space.choices) walk([...prefix, b]);
    };
    walk([]);
    const tokens = tokenizeFile(WIKITEXT_VALID, await loadTokenizer(REF_MODEL)).subarray(0, 4000);
    opts = {
      budget,
      base,
      choices: [...choices],
      mode: "bo",
      source: { kind: "lm", tokens, batch: 2, seq: 32 },
      samples: 2,
      seed: 0,
      threads: 1,
      trials: maximal.length,
      roundSize: 4,
      randomStarts: 2,
      workers: 0,
      referenceUniform: false,
      trial: { modelDir: REF_MODEL, task: "lm", dataFile: WIKITEXT_VALID, recovery: defaultRecovery },
    };
  });

  it("returns the allocation with the lowest objective among all it tried, which is the known optimum", async () => {
    const optimum = maximal.reduce((a, b) => (fakeLoss(b) < fakeLoss(a) ? b : a));
    expect(maximal.length).toBeGreaterThan(3);
    const result = await allocateBits(model, opts);
    expect(result.trials).toHaveLength(maximal.length);
    const lowest = Math.min(...result.trials.filter((t) => t.fits).map((t) => t.loss));
    expect(result.best!.loss).toBe(lowest);
    expect(result.allocation).toEqual(result.best!.bits);
    expect(result.allocation).toEqual(optimum);
    expect(result.avgBits).toBeCloseTo(allocationAvgBits(result.budgetModel, optimum), 12);
  });
});
