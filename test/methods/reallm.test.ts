// finetune --method reallm: only L₁, L₂ are graph inputs of the training step (so only they can
// receive gradients), a step changes them and nothing else, the block-wise phase lowers every
// block's output error against the float model, and the result saves as a loadable folder.

import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { loadReallmFolder } from "../../src/formats/quantized/index.js";
import { reallmMethod } from "../../src/methods/reallm/index.js";
import { blockwiseFit } from "../../src/methods/reallm/blockwise.js";
import { IDS, TARGETS, buildLmTrainGraph, gradName } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid } from "../../src/quant/linalg/kmeans.js";
import { quantizeReallmModel } from "../../src/quant/reallm.js";
import type { QuantizedModel, ReallmLinear } from "../../src/quant/types.js";
import { AdamW } from "../../src/train/adamw.js";
import { expectSlimtuneError, tempDir } from "../formats/helpers.js";
import { tinyModel } from "../quant/helpers.js";

const dir = tempDir("reallm-method");
const model = tinyModel("llama", 11);
let qm: QuantizedModel;

beforeAll(async () => {
  const gemm = new HostGemm({ threads: 1 });
  const nearest = new NearestCentroid({ threads: 1 });
  ({ qm } = await quantizeReallmModel(model, { budget: 4, rank: 2, seed: 0, gemm, nearest, blockSize: 32, maxIterations: 2 }));
  await gemm.release();
  await nearest.release();
});

describe("reallm tuning method", () => {
  it("trains exactly L₁ and L₂: the step graph's weight inputs are the factors, and a step moves only them", async () => {
    const method = reallmMethod(qm, { blockSteps: 0, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 });
    const names = [...method.trainable.keys()];
    expect(names).toHaveLength(14);
    expect(names.every((n) => /\.lowrank_l[12]$/.test(n))).toBe(true);
    const B = 2;
    const T = 8;
    const { graph, outputs } = buildLmTrainGraph(qm.config, method.params(new Graph(), "train"), B, T, names);
    // Everything else (codes, codebooks, scales, norms, embeddings) is a constant of the graph.
    expect(graph.inputs.map((v) => v.name).sort()).toEqual([IDS, TARGETS, ...names].sort());
    const compiled = await CompiledGraph.compile(graph, outputs);
    const ids = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7) % qm.config.vocabSize));
    const targets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7 + 3) % qm.config.vocabSize));
    const before = new Map(names.map((n) => [n, Float32Array.from(method.trainable.get(n)!.data)]));
    const out = await compiled.run({ ...Object.fromEntries(method.trainable), [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } });
    await compiled.release();
    const grads = new Map(names.map((n) => [n, out[gradName(n)]!.data as Float32Array]));
    for (const g of grads.values()) expect(g.some((v) => v !== 0)).toBe(true);
    new AdamW(new Map(names.map((n) => [n, method.trainable.get(n)!.data]))).step(grads, 1e-2);
    for (const n of names) expect(Array.from(method.trainable.get(n)!.data)).not.toEqual(Array.from(before.get(n)!));

    const out2 = path.join(dir, "tuned");
    method.save(out2);
    const back = loadReallmFolder(out2);
    for (const [p, q] of qm.linears) {
      const a = q as ReallmLinear;
      const b = back.linears.get(p) as ReallmLinear;
      expect(Array.from(b.vqCodes)).toEqual(Array.from(a.vqCodes));
      expect(Array.from(b.codebook)).toEqual(Array.from(a.codebook));
      expect(Array.from(b.scaleCodes)).toEqual(Array.from(a.scaleCodes));
      expect(Array.from(b.l1)).not.toEqual(Array.from(a.l1));
    }
  });

  it("block-wise phase: lowers each block's output error against the float model", async () => {
    const method = reallmMethod(qm, { blockSteps: 0, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 });
    const reference = new LlamaModel(model.config, model.weights, null);
    const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 13 + 5) % model.config.vocabSize);
    const reports = await blockwiseFit(qm, method.trainable, { tokens, seq: 16, seed: 0, optimizer: (p) => new AdamW(p), log: () => {} }, { reference, steps: 30, lr: 3e-3, batch: 2, samples: 8 });
    expect(reports).toHaveLength(1);
    expect(reports[0]!.mseAfter).toBeLessThan(reports[0]!.mseBefore);
  });

  it("needs --reference for the block-wise phase, and a ReALLM model", async () => {
    const method = reallmMethod(qm, { blockSteps: 5, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 });
    await expect(method.prepare!({ tokens: new Int32Array(100), seq: 8, seed: 0, optimizer: (p) => new AdamW(p), log: () => {} })).rejects.toThrow(/--block-steps fits each block.*--reference DIR/);
    const grid = { ...qm, linears: new Map([...qm.linears].map(([p, q]) => [p, { kind: "nf4" } as never])) };
    expectSlimtuneError(() => reallmMethod(grid, { blockSteps: 0, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 }), "E_ARG", "--method reallm trains the low-rank factors", "quantize --method reallm");
  });
});
