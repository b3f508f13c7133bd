// A batch split into two chains that ORT runs at once (one core each) is the same step: the same
// loss and gradients as the batch in one chain, for full fine-tuning and for LoRA.

import { beforeAll, describe, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { Rng } from "../../src/core/rng.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { REF_MODEL } from "../helpers/paths.js";
import { expectSameStep } from "../helpers/same-step.js";

const B = 4;
const T = 32;
const ids = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 37 + 11) % 4000));
const targets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 53 + 7) % 4000));

async function step(method: TuningMethod, replicas: number): Promise<Record<string, HostTensor>> {
  const names = [...method.trainable.keys()];
  const { graph, outputs } = buildLmTrainGraph(method.config, method.params(new Graph(), "train"), B, T, names, { replicas });
  const compiled = await CompiledGraph.compile(graph, outputs, replicas > 1 ? { threads: 1, interOpThreads: replicas } : {});
  return compiled.run({ ...Object.fromEntries(method.trainable), [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } });
}

describe("one batch as two parallel chains", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  it.each([
    ["full fine-tuning", () => fullFineTuning(model)],
    ["LoRA r4", () => {
      const m = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 1 });
      for (const [name, p] of m.trainable) if (name.includes("lora_B")) new Rng(2).fillNormal(p.data, 0.02);
      return m;
    }],
  ] as Array<[string, () => TuningMethod]>)("%s: same loss and gradients", async (_name, make) => {
    const method = make();
    const one = await step(method, 1);
    const two = await step(method, 2);
    expectSameStep(method.trainable.keys(), one, two, 2e-6);
  });

  it("refuses a batch that does not split evenly", () => {
    const method = fullFineTuning(model);
    expectSlimtuneError(() => buildLmTrainGraph(model.config, method.params(new Graph(), "train"), 3, T, [], { replicas: 2 }), "E_ARG", "--batch 3");
  });
});
