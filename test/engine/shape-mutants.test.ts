// Shape ops on symbolic dims (src/engine/ops/shape.ts: reshape, the run-time shape tensors,
// concat, expand, take), each graph built inside its test. dims.test.ts runs a similar graph, but
// builds it while vitest collects the file, before Stryker switches a mutant on (its vitest runner
// activates mutants in a beforeAll), so those checks never saw a mutant of these paths.

import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { Graph } from "../../src/engine/index.js";
import { runGraphOnce as run } from "../helpers/run-graph.js";

const iota = (n: number, from = 0) => Float32Array.from({ length: n }, (_, i) => from + i);


describe("reshape with symbolic dims", () => {
  it("one symbolic dim (left to ONNX as −1), two (sizes computed at run time), and a sum with a constant", async () => {
    const g = new Graph();
    const B = g.sym("batch");
    const T = g.sym("seq");
    const x = g.input("x", [B, T, 6]);
    const tail = g.input("tail", [1, T, 6]);
    const outputs = {
      rows: E.reshape(x, [g.dims.mul(B, T), 6]), // one symbolic dim
      heads: E.reshape(x, [B, T, 2, 3]), // two
      pairs: E.reshape(x, [g.dims.mul(B, 2), T, 3]), // a coefficient 2 on a symbol
      split: E.reshape(x, [B, 2, T, 3]), // static dims between symbolic ones
      // concat gives [B + 1, T, 6]; reshaped with two symbolic dims, B + 1 is computed at run time
      // from a polynomial with a constant term of coefficient 1.
      grown: E.reshape(E.concat([x, tail], 0), [g.dims.add(B, 1), T, 2, 3]),
    };
    for (const [b, t] of [[1, 2], [3, 4]] as const) {
      const out = await run(g, outputs, { x: { data: iota(b * t * 6), shape: [b, t, 6] }, tail: { data: iota(t * 6, 1000), shape: [1, t, 6] } });
      expect(out.rows!.shape).toEqual([b * t, 6]);
      expect(out.heads!.shape).toEqual([b, t, 2, 3]);
      expect(out.pairs!.shape).toEqual([2 * b, t, 3]);
      expect(out.split!.shape).toEqual([b, 2, t, 3]);
      for (const k of ["rows", "heads", "pairs", "split"]) expect(out[k]!.data, k).toEqual(Array.from(iota(b * t * 6)));
      expect(out.grown!.shape).toEqual([b + 1, t, 2, 3]);
      expect(out.grown!.data).toEqual([...Array.from(iota(b * t * 6)), ...Array.from(iota(t * 6, 1000))]);
    }
  });

  it("refuses a different element count, naming the symbols, and a symbol no input carries", () => {
    const g = new Graph();
    const B = g.sym("batch");
    const x = g.input("x", [B, 6]);
    expect(() => E.reshape(x, [B, 4])).toThrow("to [batch, 4]: element counts differ");
    expect(E.reshape(x, [B, 6])).toBe(x);
    const orphan = g.sym("orphan");
    expect(() => E.reshape(x, [g.dims.mul(B, orphan), 1, 6])).toThrow(/element counts differ/);
    // A run-time shape needs each symbol's size from some input's Shape.
    expect(() => E.expand(g.input("z", [B, 2, 3]), [orphan, B, 2, 3])).toThrow('symbol "orphan" is the size of no graph input');
  });

  it("a static reshape to the same shape is the input itself", () => {
    const g = new Graph();
    const x = g.input("x", [2, 3]);
    expect(E.reshape(x, [2, 3])).toBe(x);
    expect(() => E.reshape(x, [4, 2])).toThrow("to [4, 2]: element counts differ");
  });
});

describe("concat, expand and take on symbolic dims", () => {
  it("concat along a symbolic axis adds the sizes; a static part joins a symbolic one", async () => {
    const g = new Graph();
    const B = g.sym("batch");
    const P = g.sym("past");
    const T = g.sym("seq");
    const past = g.input("past", [B, P, 2]);
    const now = g.input("now", [B, T, 2]);
    const bos = g.input("bos", [1, 2]);
    const rows = g.input("rows", [B, 2]);
    const joined = E.concat([past, now], 1);
    const withBos = E.concat([bos, rows], 0);
    expect(joined.shape).toEqual([B, g.dims.add(P, T), 2]);
    expect(withBos.shape).toEqual([g.dims.add(B, 1), 2]);
    const out = await run(g, { joined, withBos }, {
      past: { data: iota(1 * 2 * 2, 50), shape: [1, 2, 2] },
      now: { data: iota(1 * 3 * 2), shape: [1, 3, 2] },
      bos: { data: Float32Array.from([-1, -2]), shape: [1, 2] },
      rows: { data: iota(2), shape: [1, 2] },
    });
    expect(out.joined).toEqual({ shape: [1, 5, 2], data: [50, 51, 52, 53, 0, 1, 2, 3, 4, 5] });
    expect(out.withBos).toEqual({ shape: [2, 2], data: [-1, -2, 0, 1] });
  });

  it("concat refuses other ranks, and symbolic parts that differ off the axis", () => {
    const g = new Graph();
    const B = g.sym("batch");
    const T = g.sym("seq");
    expect(() => E.concat([g.input("a", [2, 3]), g.input("b", [2, 3, 1])], 0)).toThrow("concat on axis 0");
    expect(() => E.concat([g.input("c", [B, 2]), g.input("d", [T, 2])], 1)).toThrow("does not match");
    expect(E.concat([g.input("e", [B, 2]), g.input("f", [B, 5])], -1).shape).toEqual([B, 7]);
  });

  it("expand keeps a symbolic size the input already has, and adds leading axes", async () => {
    const g = new Graph();
    const B = g.sym("batch");
    const T = g.sym("seq");
    const bias = g.input("bias", [T, 1]);
    const x = g.input("x", [B, T, 3]);
    const spread = E.expand(bias, [B, T, 3]);
    const outputs = { spread, sum: E.add(spread, x) };
    const out = await run(g, outputs, { bias: { data: Float32Array.from([10, 20]), shape: [2, 1] }, x: { data: iota(2 * 2 * 3), shape: [2, 2, 3] } });
    expect(out.spread).toEqual({ shape: [2, 2, 3], data: [10, 10, 10, 20, 20, 20, 10, 10, 10, 20, 20, 20] });
    expect(out.sum!.data[11]).toBe(31);
  });

  it("take with a negative index on a symbolic axis; an index outside a static axis (even of size 0) is refused", async () => {
    const g = new Graph();
    const T = g.sym("seq");
    const x = g.input("x", [2, T]);
    const out = await run(g, { last: E.take(x, 1, -1), first: E.take(x, -1, 0) }, { x: { data: iota(6), shape: [2, 3] } });
    expect(out.last).toEqual({ shape: [2], data: [2, 5] });
    expect(out.first).toEqual({ shape: [2], data: [0, 3] });
    expect(() => E.take(g.input("e", [0, 2]), 0, 0)).toThrow("index 0 out of range on axis 0");
    expect(() => E.take(g.input("s", [3]), 0, -4)).toThrow("out of range");
  });
});
