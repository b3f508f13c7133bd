// Nodes with several outputs (ORT's fused kernels): the ONNX node lists them in order with "" for
// an optional output left out and none after the last wanted one; ONNX Runtime runs the node and
// returns each wanted output; a gradient through such a node is refused.

import { describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema } from "onnx-buf";
import { CompiledGraph, Graph, type OpDef, grad, mul, reduceSum, reshape, toOnnxBytes } from "../../src/engine/index.js";

const SkipNorm: OpDef = { type: "SkipSimplifiedLayerNormalization", domain: "com.microsoft" };
const eps = 1e-6;

/** x + skip, and RMSNorm(x + skip) · gamma, computed in JavaScript. */
function expected(x: Float32Array, skip: Float32Array, gamma: Float32Array, C: number): { sum: Float32Array; norm: Float32Array } {
  const sum = x.map((v, i) => v + skip[i]!);
  const norm = new Float32Array(sum.length);
  for (let r = 0; r < sum.length / C; r++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += sum[r * C + c]! ** 2;
    const inv = 1 / Math.sqrt(ms / C + eps);
    for (let c = 0; c < C; c++) norm[r * C + c] = sum[r * C + c]! * inv * gamma[c]!;
  }
  return { sum, norm };
}

function skipNormGraph() {
  const g = new Graph();
  const C = 8;
  const x = g.input("x", [3, C]);
  const skip = g.input("skip", [3, C]);
  const gamma = g.input("gamma", [C]);
  const [norm, , , sum] = g.addMulti(SkipNorm, [x, skip, gamma], [{ shape: [3, C], dtype: "float32" }, null, null, { shape: [3, C], dtype: "float32" }], { epsilon: { float: eps } });
  return { g, C, x, skip, gamma, norm: norm!, sum: sum! };
}

describe("multi-output nodes", () => {
  it("write their outputs in order, '' for one left out", () => {
    const { g, norm, sum } = skipNormGraph();
    const model = fromBinary(ModelProtoSchema, toOnnxBytes(g, { norm, sum }));
    const node = model.graph!.node.find((n) => n.opType === "SkipSimplifiedLayerNormalization")!;
    expect(node.output).toEqual(["norm", "", "", "sum"]);
    expect(node.domain).toBe("com.microsoft");
  });

  it("drop trailing outputs left out", () => {
    const g = new Graph();
    const x = g.input("x", [2, 4]);
    const gamma = g.input("gamma", [4]);
    const [norm] = g.addMulti(SkipNorm, [x, x, gamma], [{ shape: [2, 4], dtype: "float32" }, null, null, null], { epsilon: { float: eps } });
    const model = fromBinary(ModelProtoSchema, toOnnxBytes(g, { norm: norm! }));
    expect(model.graph!.node.find((n) => n.opType === "SkipSimplifiedLayerNormalization")!.output).toEqual(["norm"]);
  });

  it("run in ONNX Runtime and return every wanted output", async () => {
    const { g, C, norm, sum } = skipNormGraph();
    const compiled = await CompiledGraph.compile(g, { norm, sum });
    const x = Float32Array.from({ length: 3 * C }, (_, i) => Math.sin(i));
    const skip = Float32Array.from({ length: 3 * C }, (_, i) => Math.cos(3 * i));
    const gamma = Float32Array.from({ length: C }, (_, i) => 0.5 + i / 8);
    const out = await compiled.run({ x: { data: x, shape: [3, C] }, skip: { data: skip, shape: [3, C] }, gamma: { data: gamma, shape: [C] } });
    const want = expected(x, skip, gamma, C);
    const close = (a: Float32Array, b: Float32Array) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 5));
    close(out.sum!.data as Float32Array, want.sum);
    close(out.norm!.data as Float32Array, want.norm);
    expect(out.norm!.shape).toEqual([3, C]);
  });

  it("refuse a gradient through any of their outputs", () => {
    const { g, gamma, sum, norm } = skipNormGraph();
    expect(() => grad(reshape(reduceSum(mul(sum, sum), [0, 1]), []), [gamma])).toThrow(/several outputs and no gradient/);
    expect(() => grad(reshape(reduceSum(norm, [0, 1]), []), [gamma])).toThrow(/no gradient/);
    expect(g.nodes.at(-1)!.outputs).toHaveLength(1); // the loss's own nodes are single-output
  });

  it("require their first output", () => {
    const g = new Graph();
    const x = g.input("x", [2]);
    expect(() => g.addMulti(SkipNorm, [x, x, x], [null, { shape: [2], dtype: "float32" }])).toThrow(/first output is required/);
  });
});
