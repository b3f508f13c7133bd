// PEQA against PyTorch: ref-llama-5m quantized to 4 bits per channel (reference.json's
// rtn4_per_channel) gives the same loss, scales and scale gradients; and the three graph forms of
// a quantized layer (per-channel trick, in-graph dequantization, MatMulNBits) agree.

import { grid } from "../quant/helpers.js";
import fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, gemm } from "../../src/engine/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildLmTrainGraph, gradName, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { quantizedLinear } from "../../src/models/parts/quantized-linear.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { dequantize, quantizeLinear } from "../../src/quant/kinds/index.js";
import type { QuantSpec, QuantizedModel } from "../../src/quant/types.js";
import { REF_MODEL } from "../helpers/paths.js";
import { scaleName } from "../../src/quant/scales.js";

interface Reference {
  input_ids: number[][];
  targets: number[][];
  rtn4_per_channel: { loss: number; scales: Record<string, number[]>; scale_grads: Record<string, number[]> };
}

// float32 tolerances: scales are computed the same way (rel 1e-6); loss and gradients accumulate
// in different orders over six layers.
const SCALE_RTOL = 1e-6;
const LOSS_ATOL = 1e-4;
const GRAD_ATOL = 2e-5;
const GRAD_RTOL = 2e-3;

const ref = JSON.parse(fs.readFileSync(`${REF_MODEL}/reference.json`, "utf8")) as Reference;
const spec4: QuantSpec = { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false };

describe("PEQA on ref-llama-5m matches PyTorch (rtn4_per_channel)", () => {
  let qm: QuantizedModel;
  let out: Record<string, { data: ArrayLike<number | bigint> }>;

  beforeAll(async () => {
    qm = quantizeModel(LlamaModel.load(REF_MODEL), spec4);
    const method = peqaMethod(qm);
    const B = ref.input_ids.length;
    const T = ref.input_ids[0]!.length;
    const names = [...method.trainable.keys()];
    const { graph, outputs } = buildLmTrainGraph(qm.config, method.params(new Graph()), B, T, names);
    const compiled = await CompiledGraph.compile(graph, outputs);
    out = await compiled.run({
      ...Object.fromEntries(method.trainable),
      [IDS]: { data: BigInt64Array.from(ref.input_ids.flat(), BigInt), shape: [B, T] },
      [TARGETS]: { data: BigInt64Array.from(ref.targets.flat(), BigInt), shape: [B * T] },
    });
  });

  it(`initial scales within ${SCALE_RTOL} relative`, () => {
    for (const [path, expected] of Object.entries(ref.rtn4_per_channel.scales)) {
      const s = grid(qm.linears.get(path)).scales;
      expected.forEach((e, i) => expect(Math.abs(s[i]! - e) / e, `${path}[${i}]`).toBeLessThan(SCALE_RTOL));
    }
  });

  it(`loss within ${LOSS_ATOL}`, () => {
    expect(Math.abs((out.loss!.data[0] as number) - ref.rtn4_per_channel.loss)).toBeLessThan(LOSS_ATOL);
  });

  it(`scale gradients within ${GRAD_ATOL} + ${GRAD_RTOL}·|g|`, () => {
    for (const [path, expected] of Object.entries(ref.rtn4_per_channel.scale_grads)) {
      const g = out[gradName(scaleName(path))]!.data as Float32Array;
      expected.forEach((e, i) => expect(Math.abs(g[i]! - e), `${path}[${i}]`).toBeLessThan(GRAD_ATOL + GRAD_RTOL * Math.abs(e)));
    }
  });
});

describe("quantized layer graph forms agree with the dequantized weight", () => {
  const N = 96;
  const K = 256;
  const M = 5;
  const w = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 12.9898) * 0.05);
  const x = Float32Array.from({ length: M * K }, (_, i) => Math.cos(i * 78.233));
  const specs: Array<[string, QuantSpec]> = [
    ["rtn 4-bit per channel", spec4],
    ["rtn 3-bit per channel", { ...spec4, bits: 3 }],
    ["rtn 2-bit group 64", { ...spec4, bits: 2, groupSize: 64 }],
    ["rtn 8-bit group 32", { ...spec4, bits: 8, groupSize: 32 }],
    ["nf4 block 64", { scheme: "nf4", bits: 4, groupSize: 64, symmetric: true }],
  ];
  it.each(specs)("%s", async (_name, spec) => {
    const q = quantizeLinear(w, N, K, spec);
    const run = async (fused: boolean | "dense") => {
      const g = new Graph();
      const xv = g.input("x", [M, K]);
      const y = fused === "dense" ? gemm(xv, g.constant(dequantize(q), [N, K]), { transB: true }) : quantizedLinear(g, q, "layer", { fused })(xv);
      const c = await CompiledGraph.compile(g, { y });
      return (await c.run({ x: { data: x, shape: [M, K] } })).y!.data as Float32Array;
    };
    const dense = await run("dense");
    for (const fused of [false, true]) {
      const y = await run(fused);
      let worst = 0;
      y.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - dense[i]!))));
      expect(worst, `fused=${fused}`).toBeLessThan(1e-4);
    }
  });
});
