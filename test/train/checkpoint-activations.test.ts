// Activation checkpointing changes where activations live, not what is computed: a step with every
// decoder layer recomputed in the backward gives the plain step's loss and gradients (full
// fine-tuning, LoRA, and PEQA on a 4-bit base), and a method with an in-layer penalty is refused.

import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { defaultFineGatesOptions, fineGatesMethod } from "../../src/methods/finegates/index.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { Rng } from "../../src/core/rng.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { REF_MODEL } from "../helpers/paths.js";
import { expectSameStep } from "../helpers/same-step.js";

const B = 2;
const T = 24;
const ids = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 37 + 11) % 4000));
const targets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 53 + 7) % 4000));
const batch = { [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } };

async function step(method: TuningMethod, checkpoint: boolean): Promise<Record<string, HostTensor>> {
  const names = [...method.trainable.keys()];
  const { graph, outputs } = buildLmTrainGraph(method.config, method.params(new Graph(), "train"), B, T, names, { checkpoint });
  if (checkpoint) expect(graph.segments.length).toBe(method.config.numLayers);
  const compiled = await CompiledGraph.compile(graph, outputs);
  return compiled.run({ ...Object.fromEntries(method.trainable), ...batch });
}

describe("activation checkpointing", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  const cases: Array<[string, () => TuningMethod]> = [
    ["full fine-tuning", () => fullFineTuning(model)],
    ["LoRA r4 with trained-looking B", () => {
      const m = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 1 });
      const rng = new Rng(3);
      for (const [name, p] of m.trainable) if (name.includes("lora_B")) rng.fillNormal(p.data, 0.02);
      return m;
    }],
    ["PEQA on RTN 4-bit per channel", () => peqaMethod(quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false }))],
    ["PEQA on RTN 3-bit in groups of 64", () => peqaMethod(quantizeModel(model, { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false }))],
  ];

  it.each(cases)("%s: same loss and gradients", async (_name, make) => {
    const method = make();
    const plain = await step(method, false);
    const ckpt = await step(method, true);
    expectSameStep(method.trainable.keys(), plain, ckpt, 1e-6);
  });

  it("refuses a method whose penalty lives inside the layers (FineGates)", () => {
    const method = fineGatesMethod(model, { ...defaultFineGatesOptions, seed: 0 });
    expectSlimtuneError(() => buildLmTrainGraph(model.config, method.params(new Graph(), "train"), B, T, [...method.trainable.keys()], { checkpoint: true }), "E_ARG", "--checkpoint-activations", "finegates");
  });
});
