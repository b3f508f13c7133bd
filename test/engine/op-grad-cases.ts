// The op-gradient table: one row per differentiable op (and per hand-written VJP), each checked
// against float64 finite differences by ops-grad.test.ts.

import * as E from "../../src/engine/index.js";
import type { Graph, Value } from "../../src/engine/index.js";
import type { CheckInput, GradCheckOptions } from "./gradcheck.js";

const pos = (x: number) => Math.abs(x) + 0.5;
const ids = (values: number[]) => BigInt64Array.from(values, BigInt);

/** Name, the function of the inputs, the inputs, and tolerances when float64 differences cannot reach the default. */
export type Case = [string, (g: Graph, xs: Value[]) => Value, CheckInput[], GradCheckOptions?];

export const cases: Case[] = [
  ["add (broadcast)", (_g, [a, b]) => E.add(a!, b!), [{ shape: [3, 4] }, { shape: [4] }]],
  ["sub (broadcast)", (_g, [a, b]) => E.sub(a!, b!), [{ shape: [3, 1] }, { shape: [2, 3, 4] }]],
  ["mul (broadcast)", (_g, [a, b]) => E.mul(a!, b!), [{ shape: [2, 3, 4] }, { shape: [3, 1] }]],
  ["div", (_g, [a, b]) => E.div(a!, b!), [{ shape: [3, 4] }, { shape: [3, 4], map: pos }]],
  ["neg", (_g, [a]) => E.neg(a!), [{ shape: [5] }]],
  ["exp", (_g, [a]) => E.exp(a!), [{ shape: [5] }]],
  ["log", (_g, [a]) => E.log(a!), [{ shape: [5], map: pos }]],
  ["sqrt", (_g, [a]) => E.sqrt(a!), [{ shape: [5], map: pos }]],
  ["reciprocal", (_g, [a]) => E.reciprocal(a!), [{ shape: [5], map: pos }]],
  ["sigmoid", (_g, [a]) => E.sigmoid(a!), [{ shape: [6] }]],
  ["tanh", (_g, [a]) => E.tanh(a!), [{ shape: [6] }]],
  ["abs", (_g, [a]) => E.abs(a!), [{ shape: [6], map: (x) => x + Math.sign(x) * 0.1 }]],
  ["clip", (_g, [a]) => E.clip(a!, -0.5, 0.7), [{ shape: [12], map: (x) => (Math.abs(x + 0.5) < 0.01 || Math.abs(x - 0.7) < 0.01 ? x + 0.05 : x) }]],
  ["where", (g, [a, b]) => E.where(E.less(a!, g.scalar(0, "float64")), a!, b!), [{ shape: [8] }, { shape: [8] }]],
  ["matmul (batched, broadcast)", (_g, [a, b]) => E.matmul(a!, b!), [{ shape: [2, 3, 4, 5] }, { shape: [3, 5, 2] }]],
  ["gemm", (_g, [a, b]) => E.gemm(a!, b!, { alpha: 0.5 }), [{ shape: [3, 4] }, { shape: [4, 5] }]],
  ["gemm transB", (_g, [a, b]) => E.gemm(a!, b!, { transB: true }), [{ shape: [3, 4] }, { shape: [5, 4] }]],
  ["gemm transA (alpha 2)", (_g, [a, b]) => E.gemm(a!, b!, { transA: true, alpha: 2 }), [{ shape: [4, 3] }, { shape: [4, 5] }]],
  ["gemm transA transB", (_g, [a, b]) => E.gemm(a!, b!, { transA: true, transB: true }), [{ shape: [4, 3] }, { shape: [5, 4] }]],
  ["reduceSum", (_g, [a]) => E.reduceSum(a!, [0, 2]), [{ shape: [2, 3, 4] }]],
  ["reduceMean keepdims", (_g, [a]) => E.reduceMean(a!, [-1], true), [{ shape: [2, 3, 4] }]],
  ["reshape", (_g, [a]) => E.reshape(a!, [4, 6]), [{ shape: [2, 3, 4] }]],
  ["transpose", (_g, [a]) => E.transpose(a!, [2, 0, 1]), [{ shape: [2, 3, 4] }]],
  ["slice", (_g, [a]) => E.slice(a!, 1, 1, 3), [{ shape: [2, 4, 3] }]],
  ["pad", (_g, [a]) => E.pad(a!, [1, 0], [0, 2]), [{ shape: [2, 3] }]],
  ["concat", (_g, [a, b]) => E.concat([a!, b!], -1), [{ shape: [2, 3] }, { shape: [2, 2] }]],
  ["expand", (_g, [a]) => E.expand(a!, [3, 2, 4]), [{ shape: [2, 1] }]],
  ["gather (duplicate ids)", (_g, [t, i]) => E.gather(t!, i!), [{ shape: [5, 3] }, { shape: [2, 3], dtype: "int64", data: ids([1, 4, 1, 0, 4, 4]) }]],
  ["gatherElements", (_g, [x, i]) => E.gatherElements(x!, i!, 1), [{ shape: [3, 4] }, { shape: [3, 1], dtype: "int64", data: ids([2, 0, 3]) }]],
  ["softmax", (_g, [a]) => E.softmax(a!, -1), [{ shape: [3, 5] }]],
  ["logSoftmax", (_g, [a]) => E.logSoftmax(a!, -1), [{ shape: [3, 5] }]],
  ["rmsNorm (hand-written VJP)", (_g, [x, w]) => E.rmsNorm(x!, w!, 1e-5), [{ shape: [4, 6] }, { shape: [6] }]],
  // ONNX Runtime has Erf for float32 only: the row runs it there, with the float32 step and tolerance.
  ["erf (float32)", (_g, [a]) => E.cast(E.erf(E.cast(a!, "float32")), "float64"), [{ shape: [7] }], { h: 1e-2, rtol: 1e-3, atol: 1e-6 }],
  ["sin", (_g, [a]) => E.sin(a!), [{ shape: [7] }]],
  ["cos", (_g, [a]) => E.cos(a!), [{ shape: [7] }]],
  // Through float32 and back: the round trip loses ~6e-8 relative, so the step and tolerance are wider.
  ["cast (float64 → float32 → float64)", (_g, [a]) => E.mul(E.cast(E.cast(a!, "float32"), "float64"), a!), [{ shape: [6] }], { h: 1e-2, rtol: 1e-3, atol: 1e-6 }],
  ["silu", (_g, [x]) => E.silu(x!), [{ shape: [7] }]],
  ["siluGate (hand-written VJP)", (_g, [a, b]) => E.siluGate(a!, b!), [{ shape: [3, 5] }, { shape: [3, 5] }]],
  ["rmsNorm on [B, T, C] (hand-written VJP)", (_g, [x, w]) => E.rmsNorm(x!, w!, 1e-5), [{ shape: [2, 3, 6] }, { shape: [6] }]],
  ["rope", (g, [x]) => {
    const { cos, sin } = E.ropeTables(3, 4, 10000);
    return E.rope(x!, g.constant(Float64Array.from(cos), [3, 4], "float64"), g.constant(Float64Array.from(sin), [3, 4], "float64"));
  }, [{ shape: [2, 3, 4] }]],
  ["crossEntropy", (_g, [l, t]) => E.crossEntropy(l!, t!), [{ shape: [4, 6] }, { shape: [4], dtype: "int64", data: ids([5, 0, 2, 2]) }]],
  ["crossEntropyMean (hand-written VJP)", (_g, [l, t]) => E.crossEntropyMean(l!, t!), [{ shape: [4, 6] }, { shape: [4], dtype: "int64", data: ids([5, 0, 2, 2]) }]],
  ["crossEntropyWeighted (hand-written VJP)", (g, [l, t]) => E.crossEntropyWeighted(l!, t!, g.constant(Float64Array.from([0.5, 0, 0.25, 0.25]), [4], "float64")), [{ shape: [4, 6] }, { shape: [4], dtype: "int64", data: ids([5, 0, 2, 2]) }]],
  ["scatterElementsAdd", (_g, [x, i, u]) => E.scatterElementsAdd(x!, i!, u!, 1), [{ shape: [3, 4] }, { shape: [3, 1], dtype: "int64", data: ids([2, 0, 3]) }, { shape: [3, 1] }]],
  ["causal GQA attention", (g, [q, k, v]) => {
    const { cos, sin } = E.ropeTables(3, 4, 10000);
    const rot = { cos: g.constant(Float64Array.from(cos), [3, 4], "float64"), sin: g.constant(Float64Array.from(sin), [3, 4], "float64") };
    return E.causalAttention(q!, k!, v!, { batch: 2, seq: 3, heads: 4, kvHeads: 2, headDim: 4 }, rot);
  }, [{ shape: [6, 16] }, { shape: [6, 8] }, { shape: [6, 8] }]],
  ["packed GQA attention (block mask, per-row positions)", (g, [q, k, v]) => {
    const { cos, sin } = E.ropeTables(3, 4, 10000);
    const positions = [0, 1, 0, 0, 1, 2]; // row 0: examples of 2 and 1 tokens; row 1: one of 3
    const pick = (t: Float32Array) => Float64Array.from(positions.flatMap((p) => Array.from(t.subarray(p * 4, p * 4 + 4))));
    const rot = { cos: g.constant(pick(cos), [2, 1, 3, 4], "float64"), sin: g.constant(pick(sin), [2, 1, 3, 4], "float64") };
    const M = -1e30;
    const mask = g.constant(Float64Array.from([0, M, M, 0, 0, M, M, M, 0, 0, M, M, 0, 0, M, 0, 0, 0]), [2, 1, 3, 3], "float64");
    return E.causalAttention(q!, k!, v!, { batch: 2, seq: 3, heads: 4, kvHeads: 2, headDim: 4 }, rot, undefined, mask);
  }, [{ shape: [6, 16] }, { shape: [6, 8] }, { shape: [6, 8] }]],
];
