// Forward values and argument checks of src/engine/ops that the gradient table (ops-grad.test.ts)
// does not reach: the comparison ops, CumSum, take, and the shape errors each builder throws before
// ONNX Runtime would. Found by mutation testing (docs/testing.md).

import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { Graph } from "../../src/engine/index.js";
import { runGraphOnce as run } from "../helpers/run-graph.js";


describe("comparisons, CumSum and take compute what they are named for", () => {
  it("equal, less, lessOrEqual, greater, and, sign; cumSum along an axis; take with a negative index", async () => {
    const g = new Graph();
    const a = g.input("a", [2, 3], "float32");
    const b = g.input("b", [3], "float32");
    const outputs = {
      eq: E.cast(E.equal(a, b), "float32"),
      lt: E.cast(E.less(a, b), "float32"),
      le: E.cast(E.lessOrEqual(a, b), "float32"),
      gt: E.cast(E.greater(a, b), "float32"),
      both: E.cast(E.and(E.greater(a, b), E.less(a, g.scalar(5, "float32"))), "float32"),
      sign: E.sign(a),
      cum0: E.cumSum(a, 0),
      cum1: E.cumSum(a, -1),
      lastRow: E.take(a, 0, -1),
      col1: E.take(a, 1, 1),
    };
    const out = await run(g, outputs, { a: { data: Float32Array.from([1, 2, 3, 4, -5, 6]), shape: [2, 3] }, b: { data: Float32Array.from([1, 3, 2]), shape: [3] } });
    expect(out.eq!.data).toEqual([1, 0, 0, 0, 0, 0]);
    expect(out.lt!.data).toEqual([0, 1, 0, 0, 1, 0]);
    expect(out.le!.data).toEqual([1, 1, 0, 0, 1, 0]);
    expect(out.gt!.data).toEqual([0, 0, 1, 1, 0, 1]);
    expect(out.both!.data).toEqual([0, 0, 1, 1, 0, 0]);
    expect(out.both!.shape).toEqual([2, 3]);
    expect(out.sign!.data).toEqual([1, 1, 1, 1, -1, 1]);
    expect(out.cum0!.data).toEqual([1, 2, 3, 5, -3, 9]);
    expect(out.cum1!.data).toEqual([1, 3, 6, 4, -1, 5]);
    expect(out.lastRow).toEqual({ shape: [3], data: [4, -5, 6] });
    expect(out.col1).toEqual({ shape: [2], data: [2, -5] });
  });

  it("where broadcasts its condition and both branches to one shape", async () => {
    const g = new Graph();
    const a = g.input("a", [2, 1], "float32");
    const b = g.input("b", [1, 3], "float32");
    const w = E.where(E.less(a, g.scalar(0, "float32")), a, b);
    expect(w.shape).toEqual([2, 3]);
    const out = await run(g, { w }, { a: { data: Float32Array.from([-1, 2]), shape: [2, 1] }, b: { data: Float32Array.from([7, 8, 9]), shape: [1, 3] } });
    expect(out.w!.data).toEqual([-1, -1, -1, 7, 8, 9]);
  });

  it("matmul broadcasts only the leading axes: [2, 3, 4] @ [4, 5] is [2, 3, 5]", () => {
    const g = new Graph();
    expect(E.matmul(g.input("a", [2, 3, 4]), g.input("b", [4, 5])).shape).toEqual([2, 3, 5]);
    expect(E.matmul(g.input("c", [3, 4]), g.input("d", [2, 4, 5])).shape).toEqual([2, 3, 5]);
  });

  it("reductions keep or drop the reduced axes, and sum a duplicated axis once", () => {
    const g = new Graph();
    const x = g.input("x", [2, 3, 4], "float32");
    expect(E.reduceSum(x, [1]).shape).toEqual([2, 4]);
    expect(E.reduceSum(x, [1], true).shape).toEqual([2, 1, 4]);
    expect(E.reduceMean(x, [-1, 2, 0]).shape).toEqual([3]);
  });
});

describe("builders refuse what ONNX Runtime would fail on later, saying why", () => {
  const g = new Graph();
  const m23 = g.input("m23", [2, 3], "float32");
  const m34 = g.input("m34", [3, 4], "float32");
  const v3 = g.input("v3", [3], "float32");
  const t234 = g.input("t234", [2, 3, 4], "float32");

  it.each([
    ["matmul of a vector", () => E.matmul(v3, m34), /matmul needs rank >= 2/],
    ["matmul with a vector on the right", () => E.matmul(m23, v3), /matmul needs rank >= 2/],
    ["matmul inner dims", () => E.matmul(m34, m23), /matmul inner dims differ/],
    ["gemm of a 3-D operand", () => E.gemm(t234, m34), /gemm needs 2-D operands/],
    ["gemm of a vector on the right", () => E.gemm(m23, v3), /gemm needs 2-D operands/],
    ["gemm inner dims (transB)", () => E.gemm(m23, m34, { transB: true }), /gemm inner dims differ: \[2, 3\] · \[3, 4\]ᵀ/],
    ["gemm inner dims (transA)", () => E.gemm(m23, m34, { transA: true }), /gemm inner dims differ: \[2, 3\]ᵀ · \[3, 4\]$/],
    ["reshape to another count", () => E.reshape(m23, [7]), /element counts differ/],
    ["transpose with a short perm", () => E.transpose(t234, [1, 0]), /has the wrong rank/],
    ["slice past the end", () => E.slice(m23, 1, 2, 4), /\[2, 4\) out of range on axis 1/],
    ["slice with start after end", () => E.slice(m23, 1, 2, 1), /out of range/],
    ["slice from a negative start", () => E.slice(m23, 0, -1, 1), /out of range/],
    ["take past the end", () => E.take(m23, 1, 3), /index 3 out of range on axis 1/],
    ["take before the start", () => E.take(m23, 1, -4), /index -4 out of range/],
    ["concat of nothing", () => E.concat([], 0), /concat of nothing/],
    ["concat of different ranks", () => E.concat([m23, v3], 0), /does not match/],
  ] as Array<[string, () => unknown, RegExp]>)("%s", (_label, fn, message) => {
    expect(fn).toThrow(message);
  });

  it("accepts the edges: take at −dim and dim − 1, a full slice returns its input, one-input concat too", () => {
    expect(E.take(m23, 1, -3).shape).toEqual([2]);
    expect(E.take(m23, 1, 2).shape).toEqual([2]);
    expect(E.slice(m23, 1, 0, 3)).toBe(m23);
    expect(E.slice(m23, 1, 3, 3).shape).toEqual([2, 0]);
    expect(E.concat([m23], 1)).toBe(m23);
    expect(E.concat([m23, m23], 0).shape).toEqual([4, 3]);
    expect(E.transpose(m23, [0, 1])).toBe(m23);
    expect(E.reshape(m23, [2, 3])).toBe(m23);
    expect(E.expand(m23, [2, 3])).toBe(m23);
    expect(E.pad(m23, [0, 0], [0, 0])).toBe(m23);
  });

  it("gather takes only integer ids; a cast to the same dtype is the input itself", () => {
    expect(() => E.gather(m34, v3)).toThrow(/ids must be integers/);
    expect(E.cast(m23, "float32")).toBe(m23);
  });

  it("binary ops refuse mixed dtypes", () => {
    const h = new Graph();
    expect(() => E.add(h.input("f", [2], "float32"), h.input("d", [2], "float64"))).toThrow(/Add: dtype float32 vs float64/);
  });

  it("a symbolic dim that is the size of no input cannot be computed at run time", () => {
    const h = new Graph();
    const known = h.sym("known");
    const x = h.input("x", [known, 2], "float32");
    const orphan = h.sym("orphan");
    expect(() => E.reshape(x, [h.dims.mul(orphan, 2), h.dims.mul(known, 1)])).toThrow(/element counts differ/);
    expect(() => E.expand(h.input("y", [1, 2], "float32"), [orphan, known])).toThrow(/symbol "orphan" is the size of no graph input/);
  });
});
