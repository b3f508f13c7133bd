// The backward does no gradient work for what does not train: with the (tied) embedding and every
// base weight frozen (LoRA), the training graph that ONNX Runtime receives has no embedding
// scatter and no Gemm producing a base weight's gradient; full fine-tuning, for contrast, has both.

import { beforeAll, describe, expect, it } from "vitest";
import { Graph, type Node, type Value } from "../../src/engine/index.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { buildLmTrainGraph } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { REF_MODEL } from "../helpers/paths.js";

/** The nodes the ONNX file gets: those some output depends on. */
function liveNodes(outputs: readonly Value[]): Node[] {
  const live = new Set<Node>();
  const stack = [...outputs];
  while (stack.length > 0) {
    const node = stack.pop()!.producer;
    if (!node || live.has(node)) continue;
    live.add(node);
    stack.push(...node.inputs);
  }
  return [...live];
}

function backwardWork(model: LlamaModel, method: TuningMethod) {
  const { outputs } = buildLmTrainGraph(method.config, method.params(new Graph(), "train"), 2, 16, [...method.trainable.keys()]);
  const nodes = liveNodes(Object.values(outputs));
  const c = model.config;
  const baseShapes = new Set([...model.weights.values()].filter((w) => w.shape.length === 2).map((w) => w.shape.join("x")));
  return {
    scatters: nodes.filter((n) => n.op.type === "ScatterND").length,
    embeddingShaped: nodes.filter((n) => n.output.shape.join("x") === `${c.vocabSize}x${c.hiddenSize}`).length,
    baseWeightGrads: nodes.filter((n) => n.op.type === "Gemm" && baseShapes.has(n.output.shape.join("x"))).length,
  };
}

describe("gradient work for frozen weights", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
    expect(model.config.tieWordEmbeddings).toBe(true);
  });

  it("LoRA: no embedding gradient (neither the gather's scatter nor the LM head's dW) and no base weight gradient", () => {
    const work = backwardWork(model, loraForDenseModel(model, { rank: 4, alpha: 8, seed: 1 }));
    expect(work).toEqual({ scatters: 0, embeddingShaped: 0, baseWeightGrads: 0 });
  });

  it("full fine-tuning computes them (the check above can see them)", () => {
    const work = backwardWork(model, fullFineTuning(model));
    expect(work.scatters).toBe(1);
    expect(work.embeddingShaped).toBeGreaterThan(0);
    expect(work.baseWeightGrads).toBeGreaterThanOrEqual(7 * model.config.numLayers);
  });
});
