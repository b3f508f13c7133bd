// Mixed precision end to end on ref-llama-5m: Bayesian optimisation with its trials evaluated by two
// worker processes gives exactly the run that evaluating them one by one in this process gives.

import { beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { tokenizeFile } from "../../src/data/text-file.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { allocationBytes, budgetModel, fitsBudget, uniformAllocation } from "../../src/quant/budget.js";
import { type MixedPrecisionOptions, allocateBits } from "../../src/recipes/mixed-precision/index.js";
import { defaultRecovery } from "../../src/recipes/mixed-precision/trial.js";
import { REF_MODEL, WIKITEXT_VALID } from "../helpers/paths.js";

describe("mixed precision by Bayesian optimisation", () => {
  let model: LlamaModel;
  let opts: MixedPrecisionOptions;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    const base = { scheme: "rtn" as const, groupSize: 32, symmetric: false };
    const bm = budgetModel(model, base);
    const tokens = tokenizeFile(WIKITEXT_VALID, await loadTokenizer(REF_MODEL)).subarray(0, 20000);
    opts = {
      budget: { kind: "bytes", limit: allocationBytes(bm, uniformAllocation(bm, 3)) },
      base,
      choices: [2, 3, 4, 8],
      mode: "bo",
      source: { kind: "lm", tokens, batch: 2, seq: 32 },
      samples: 2,
      seed: 0,
      threads: 1,
      trials: 4,
      roundSize: 2,
      randomStarts: 1,
      workers: 0,
      referenceUniform: false,
      trial: { modelDir: REF_MODEL, task: "lm", dataFile: WIKITEXT_VALID, recovery: { ...defaultRecovery, steps: 2, warmup: 1, batch: 2, seq: 32, evalTokens: 256 } },
    };
  });

  it("two worker processes give exactly the sequential run", async () => {
    const sequential = await allocateBits(model, opts);
    const parallel = await allocateBits(model, { ...opts, workers: 2 });
    const strip = (r: typeof sequential) => r.trials.map((t) => ({ bits: t.bits, round: t.round, origin: t.origin, loss: t.loss, lossBefore: t.lossBefore, bytes: t.bytes }));
    expect(strip(parallel)).toEqual(strip(sequential));
    expect(parallel.allocation).toEqual(sequential.allocation);
    expect(sequential.trials).toHaveLength(4);
    expect(sequential.trials[0]!.origin).toBe("start");
    expect(sequential.trials[0]!.bits).toEqual(sequential.start);
    for (const t of sequential.trials) {
      expect(fitsBudget(sequential.budgetModel, opts.budget, t.bits)).toBe(true);
      expect(t.loss).toBeLessThan(t.lossBefore); // the recovery steps lower the held-out loss
    }
    expect(sequential.front.length).toBeGreaterThan(0);
    // The objective tells allocations apart.
    expect(new Set(sequential.trials.map((t) => t.loss)).size).toBeGreaterThan(1);
  }, 600_000); // ~30 s on an idle 2-core machine; a shared one takes several times that
});
