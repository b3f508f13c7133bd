// Symbolic dims must leave static graphs alone: the ONNX bytes of the training and scoring graphs
// are pinned by SHA-256 to what the engine wrote before dynamic dims existed (same ops, same
// initializers, same order, so the same speed). A deliberate change to these graphs updates the
// hashes here and says why in its commit.

import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Graph, toOnnxBytes } from "../../src/engine/index.js";
import { buildClsTrainGraph } from "../../src/models/llama/cls-graphs.js";
import { buildLmScoreGraph, buildLmTrainGraph } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL } from "../helpers/paths.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex").slice(0, 16);

describe("static graphs are byte-identical to the pre-symbolic engine", () => {
  const model = LlamaModel.load(REF_MODEL);
  const names = [...model.weights.keys()];

  it.each([
    [
      "full fine-tuning step",
      "ca2aaa6ec5e34ffd",
      () => buildLmTrainGraph(model.config, new DenseParams(new Graph(), model.weights, new Set(names)), 2, 16, names),
    ],
    [
      "LoRA step",
      "a5a092f432ec1876",
      () => {
        const lora = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 1 });
        return buildLmTrainGraph(model.config, lora.params(new Graph()), 2, 16, [...lora.trainable.keys()]);
      },
    ],
    [
      "4-bit MatMulNBits scoring",
      "406c697317e42eb6",
      () => {
        const qm = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false });
        return buildLmScoreGraph(model.config, new QuantizedParams(new Graph(), qm, { fused: true }), 2, 16);
      },
    ],
    [
      "classification step",
      "51f805d7bd3de875",
      () => buildClsTrainGraph(model.config, new DenseParams(new Graph(), model.weights, new Set(names)), 2, 2, 16, names),
    ],
  ])("%s", (_name, expected, build) => {
    const { graph, outputs } = build();
    expect(sha(toOnnxBytes(graph, outputs))).toBe(expected);
  });
});
