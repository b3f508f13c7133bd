// ref-llama-5m against the PyTorch float32 reference (shared/models/ref-llama-5m/reference.json):
// loss, logits at six positions, every parameter's gradient norm, and the listed gradients.

import fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildLmTrainGraph, gradName, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { DenseParams } from "../../src/models/llama/params.js";

const DIR = new URL("../../../shared/models/ref-llama-5m", import.meta.url).pathname;

interface Reference {
  input_ids: number[][];
  targets: number[][];
  fp32: {
    loss: number;
    logits_at: Record<string, number[]>;
    grad_norms: Record<string, number>;
    grads: Record<string, number[] | number[][]>;
  };
}

// Tolerances: float32 accumulations in different orders (ORT vs PyTorch/OpenBLAS) over 6 layers.
const LOSS_ATOL = 1e-4;
const LOGIT_ATOL = 2e-3;
const NORM_RTOL = 1e-3;
const GRAD_ATOL = 1e-5;
const GRAD_RTOL = 1e-3;

describe("ref-llama-5m matches PyTorch", () => {
  const ref = JSON.parse(fs.readFileSync(`${DIR}/reference.json`, "utf8")) as Reference;
  let out: Record<string, { data: ArrayLike<number | bigint> }>;
  let names: string[];

  beforeAll(async () => {
    const model = LlamaModel.load(DIR);
    names = [...model.weights.keys()];
    const B = ref.input_ids.length;
    const T = ref.input_ids[0]!.length;
    const params = new DenseParams(new Graph(), model.weights, new Set(names));
    const { graph, outputs } = buildLmTrainGraph(model.config, params, B, T, names, { logits: true });
    const compiled = await CompiledGraph.compile(graph, outputs);
    const feeds: Record<string, { data: Float32Array | BigInt64Array; shape: number[] }> = {
      [IDS]: { data: BigInt64Array.from(ref.input_ids.flat(), BigInt), shape: [B, T] },
      [TARGETS]: { data: BigInt64Array.from(ref.targets.flat(), BigInt), shape: [B * T] },
    };
    for (const [name, w] of model.weights) feeds[name] = w;
    out = await compiled.run(feeds);
  });

  it(`loss within ${LOSS_ATOL}`, () => {
    expect(Math.abs((out.loss!.data[0] as number) - ref.fp32.loss)).toBeLessThan(LOSS_ATOL);
  });

  it(`logits at the six positions within ${LOGIT_ATOL}`, () => {
    const T = ref.input_ids[0]!.length;
    const V = 4096;
    for (const [key, expected] of Object.entries(ref.fp32.logits_at)) {
      const [b, t] = key.split(",").map(Number) as [number, number];
      const row = (b * T + t) * V;
      let worst = 0;
      expected.forEach((e, j) => (worst = Math.max(worst, Math.abs((out.logits!.data[row + j] as number) - e))));
      expect(worst, key).toBeLessThan(LOGIT_ATOL);
    }
  });

  it(`every parameter's gradient norm within ${NORM_RTOL} relative`, () => {
    expect(Object.keys(ref.fp32.grad_norms).sort()).toEqual([...names].sort());
    for (const [name, norm] of Object.entries(ref.fp32.grad_norms)) {
      const g = out[gradName(name)]!.data as Float32Array;
      let s = 0;
      for (const x of g) s += x * x;
      expect(Math.abs(Math.sqrt(s) - norm) / norm, name).toBeLessThan(NORM_RTOL);
    }
  });

  it(`listed gradients elementwise within ${GRAD_ATOL} + ${GRAD_RTOL}·|g|`, () => {
    for (const [key, expected] of Object.entries(ref.fp32.grads)) {
      const name = key.replace(/\[:\d+\]$/, "");
      const g = out[gradName(name)]!.data as Float32Array;
      const flat = (expected as Array<number | number[]>).flat();
      flat.forEach((e, j) => {
        expect(Math.abs(g[j]! - e), `${key}[${j}]`).toBeLessThan(GRAD_ATOL + GRAD_RTOL * Math.abs(e));
      });
    }
  });
});
