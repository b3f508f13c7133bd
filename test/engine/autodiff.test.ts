// grad() beyond the numbers the op table checks: its errors, the zero gradient of an unused
// parameter, that only nodes between the loss and the parameters are differentiated, and that
// activation checkpointing really rebuilds a segment in the backward (the checkpointing tests only
// compare numbers, which a grad() that ignored checkpointing would also pass).

import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { CompiledGraph, Graph, grad } from "../../src/engine/index.js";

const count = (g: Graph, type: string) => g.nodes.filter((n) => n.op.type === type).length;

describe("grad", () => {
  it("refuses a loss that is not a scalar, naming its shape", () => {
    const g = new Graph();
    const x = g.input("x", [2, 3], "float32");
    expect(() => grad(E.tanh(x), [x])).toThrow(/loss must be a scalar, got \[2, ?3\]/);
  });

  it("refuses an op with no gradient between the loss and a parameter, naming it", () => {
    const g = new Graph();
    const x = g.input("x", [3], "float32");
    const noGrad: E.OpDef = { type: "Sign" };
    const y = g.add(noGrad, [x], x.shape, x.dtype);
    expect(() => grad(E.reduceSum(y, [0]), [x])).toThrow(/op Sign has no gradient/);
  });

  it("refuses a VJP that returns the wrong shape, naming the op", () => {
    const g = new Graph();
    const x = g.input("x", [3], "float32");
    const bad: E.OpDef = { type: "Neg", vjp: (_n, dy) => [E.reshape(E.concat([dy, dy], 0), [6])] };
    const y = g.add(bad, [x], x.shape, x.dtype);
    expect(() => grad(E.reduceSum(y, [0]), [x])).toThrow(/VJP of Neg gave \[6\]/);
  });

  it("gives a zero-filled gradient of the right shape for a parameter the loss does not read", async () => {
    const g = new Graph();
    const x = g.input("x", [3], "float32");
    const unused = g.input("u", [2, 2], "float32");
    const [gx, gu] = grad(E.reduceSum(E.exp(x), [0]), [x, unused]);
    expect(gu!.shape).toEqual([2, 2]);
    const compiled = await CompiledGraph.compile(g, { gx: gx!, gu: gu! }, { threads: 1 });
    const out = await compiled.run({ x: { data: Float32Array.from([0, 1, 2]), shape: [3] }, u: { data: new Float32Array(4).fill(5), shape: [2, 2] } });
    await compiled.release();
    expect(Array.from(out.gu!.data as Float32Array)).toEqual([0, 0, 0, 0]);
    expect(Array.from(out.gx!.data as Float32Array).map((v) => Number(v.toFixed(4)))).toEqual([1, Math.E, Math.exp(2)].map((v) => Number(v.toFixed(4))));
  });

  it("differentiates only the nodes between the loss and the parameters", () => {
    const g = new Graph();
    const a = g.input("a", [4], "float32");
    const c = g.input("c", [4], "float32");
    // sin's VJP builds a Cos: none may appear, since c is not asked for.
    const loss = E.add(E.reduceSum(E.exp(a), [0]), E.reduceSum(E.sin(c), [0]));
    grad(loss, [a]);
    expect(count(g, "Cos")).toBe(0);
    grad(loss, [c]);
    expect(count(g, "Cos")).toBe(1);
  });

  describe("activation checkpointing", () => {
    const build = () => {
      const g = new Graph();
      const x = g.input("x", [2, 3], "float32");
      const w = g.input("w", [3], "float32");
      const y = g.checkpointed(x, (xi) => E.tanh(E.mul(xi, w)));
      return { g, x, w, loss: E.reduceSum(E.mul(y, y), [0, 1]) };
    };

    it("rebuilds each checkpointed segment once in the backward, and only with checkpoint: true", () => {
      const plain = build();
      grad(plain.loss, [plain.x, plain.w]);
      expect(count(plain.g, "Tanh")).toBe(1);
      const ckpt = build();
      grad(ckpt.loss, [ckpt.x, ckpt.w], { checkpoint: true });
      expect(count(ckpt.g, "Tanh")).toBe(2);
    });

    it("gives the same gradients either way", async () => {
      const run = async (checkpoint: boolean) => {
        const { g, x, w, loss } = build();
        const [gx, gw] = grad(loss, [x, w], { checkpoint });
        const compiled = await CompiledGraph.compile(g, { gx: gx!, gw: gw! }, { threads: 1 });
        const out = await compiled.run({ x: { data: Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6]), shape: [2, 3] }, w: { data: Float32Array.from([1.5, -0.5, 2]), shape: [3] } });
        await compiled.release();
        return [...(out.gx!.data as Float32Array), ...(out.gw!.data as Float32Array)];
      };
      const [a, b] = [await run(false), await run(true)];
      a.forEach((v, i) => expect(b[i]).toBeCloseTo(v, 6));
      expect(a.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    });

    it("refuses a segment whose inner values are used outside it", () => {
      const g = new Graph();
      const x = g.input("x", [3], "float32");
      let inner!: E.Value;
      const y = g.checkpointed(x, (xi) => {
        inner = E.exp(xi);
        return E.tanh(inner);
      });
      const loss = E.reduceSum(E.add(y, inner), [0]);
      expect(() => grad(loss, [x], { checkpoint: true })).toThrow(/built inside a checkpointed segment but used outside it/);
    });

    it("ignores an empty segment (fn returning its input) instead of taking it for the node before it", async () => {
      const g = new Graph();
      const x = g.input("x", [3], "float32");
      const t = E.tanh(x);
      const y = g.checkpointed(t, (ti) => ti);
      const [gx] = grad(E.reduceSum(E.mul(y, y), [0]), [x], { checkpoint: true });
      const compiled = await CompiledGraph.compile(g, { gx: gx! }, { threads: 1 });
      const xs = [0.2, -0.4, 0.9];
      const out = await compiled.run({ x: { data: Float32Array.from(xs), shape: [3] } });
      await compiled.release();
      // d/dx Σ tanh(x)² = 2·tanh(x)·(1 − tanh(x)²)
      xs.forEach((v, i) => expect((out.gx!.data as Float32Array)[i]).toBeCloseTo(2 * Math.tanh(v) * (1 - Math.tanh(v) ** 2), 5));
    });

    it("skips a segment that no parameter reaches", () => {
      const g = new Graph();
      const x = g.input("x", [3], "float32");
      const w = g.input("w", [3], "float32");
      const y = g.checkpointed(x, (xi) => E.tanh(xi));
      grad(E.reduceSum(E.mul(y, w), [0]), [w], { checkpoint: true });
      expect(count(g, "Tanh")).toBe(1);
    });
  });
});
