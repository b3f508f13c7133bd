// A training task that feeds the same batch at every step (the PyTorch references train on one fixed
// batch), so the loop's trajectory can be compared step by step.

import { Graph } from "../../src/engine/index.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import type { TrainTask } from "../../src/train/task.js";

export function fixedBatchTask(inputIds: number[][], targets: number[][]): TrainTask {
  const B = inputIds.length;
  const T = inputIds[0]!.length;
  const feeds = {
    [IDS]: { data: BigInt64Array.from(inputIds.flat(), BigInt), shape: [B, T] },
    [TARGETS]: { data: BigInt64Array.from(targets.flat(), BigInt), shape: [B * T] },
  };
  return {
    kind: "fixed-batch",
    fixed: { batch: B, seq: T },
    extraTrainable: new Map(),
    stepGraph: (method, trainable, shape) => ({
      key: `fixed:${method.name}:${shape}`,
      build: () => buildLmTrainGraph(method.config, method.params(new Graph(), "train"), B, T, trainable),
    }),
    sampler: () => ({ next: () => ({ feeds, tokens: B * T, shape: "fixed" }) }),
    evaluate: async () => null,
    saveExtra: () => {},
  };
}
