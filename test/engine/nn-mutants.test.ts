// src/engine/ops/nn.ts on hand-worked values where the gradient table does not look: softmax's
// default axis on rank 3, gather's integer ids (int32 and int64), and GatherElements' gradient
// along axis 1 with an index picked twice (ScatterElements must add, on the right axis).

import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { Graph } from "../../src/engine/index.js";
import { runGraphOnce as run } from "../helpers/run-graph.js";


describe("nn ops by hand", () => {
  it("softmax and logSoftmax default to the last axis of a rank-3 input", async () => {
    const g = new Graph();
    const x = g.input("x", [1, 2, 2]);
    const out = await run(g, { s: E.softmax(x), l: E.logSoftmax(x) }, { x: { data: Float32Array.from([0, Math.log(3), 1, 1]), shape: [1, 2, 2] } });
    // Rows [0, ln 3] → [1/4, 3/4]; [1, 1] → [1/2, 1/2]. Over axis 1 it would be [e⁰, e¹]/(…) per column.
    out.s!.data.forEach((v, i) => expect(v).toBeCloseTo([0.25, 0.75, 0.5, 0.5][i]!, 6));
    out.l!.data.forEach((v, i) => expect(v).toBeCloseTo(Math.log([0.25, 0.75, 0.5, 0.5][i]!), 6));
  });

  it("gather takes int64 or int32 ids and refuses float ones", async () => {
    const g = new Graph();
    const table = g.input("t", [3, 2]);
    const i64 = g.input("i64", [2], "int64");
    const i32 = g.input("i32", [1, 2], "int32");
    const out = await run(g, { a: E.gather(table, i64), b: E.gather(table, i32) }, {
      t: { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [3, 2] },
      i64: { data: BigInt64Array.from([2n, 0n]), shape: [2] },
      i32: { data: Int32Array.from([1, 1]), shape: [1, 2] },
    });
    expect(out.a).toEqual({ shape: [2, 2], data: [5, 6, 1, 2] });
    expect(out.b).toEqual({ shape: [1, 2, 2], data: [3, 4, 3, 4] });
    expect(() => E.gather(table, g.input("f", [2]))).toThrow("gather: ids must be integers");
  });

  it("GatherElements' gradient along axis 1 adds the gradients of an index taken twice", async () => {
    const g = new Graph();
    const x = g.input("x", [2, 3]);
    const idx = g.input("idx", [2, 2], "int64");
    const w = g.input("w", [2, 2]);
    const picked = E.gatherElements(x, idx, 1);
    const [dx] = E.grad(E.reduceSum(E.mul(picked, w), [0, 1]), [x]);
    const out = await run(g, { picked, dx: dx! }, {
      x: { data: Float32Array.from([10, 11, 12, 20, 21, 22]), shape: [2, 3] },
      idx: { data: BigInt64Array.from([0n, 0n, 2n, 1n]), shape: [2, 2] },
      w: { data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] },
    });
    expect(out.picked!.data).toEqual([10, 10, 22, 21]);
    expect(out.dx).toEqual({ shape: [2, 3], data: [3, 0, 0, 0, 4, 3] });
  });
});
