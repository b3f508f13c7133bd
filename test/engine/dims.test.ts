// Symbolic dims: the algebra, the ONNX signature (dim_param), and one compiled graph run at several
// sizes through reshape, concat, expand and take.

import { describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { ModelProtoSchema } from "onnx-buf";
import * as E from "../../src/engine/index.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { SymbolTable } from "../../src/engine/dims.js";

describe("symbol table", () => {
  it("interns equal polynomials to one id and names them", () => {
    const t = new SymbolTable();
    const b = t.symbol("batch");
    const s = t.symbol("seq");
    const p = t.symbol("past");
    expect(t.add(p, s)).toBe(t.add(s, p));
    expect(t.mul(b, s)).toBe(t.mul(s, b));
    expect(t.add(t.mul(2, s), t.mul(s, 3))).toBe(t.mul(5, s));
    expect(t.mul(b, 4)).toBe(t.numel([b, 2, 2]));
    expect(t.name(t.add(p, s))).toBe("past + seq");
    expect(t.name(t.mul(b, s))).toBe("batch x seq");
    expect(t.evaluate(t.add(t.mul(b, s), 3), new Map([["batch", 2], ["seq", 5]]))).toBe(13);
  });

  it("refuses a symbol's id used in plain arithmetic", () => {
    const g = new Graph();
    const b = g.sym("batch");
    expect(() => g.input("x", [b * 2, 4])).toThrow(/neither a size nor a symbol/);
    expect(() => g.input("y", [b + b, 4])).toThrow(/neither a size nor a symbol/);
    expect(() => E.numel([b, 2])).toThrow(/symbolic/);
  });
});

describe("a graph with symbolic batch, sequence and past", () => {
  const g = new Graph();
  const B = g.sym("batch_size");
  const T = g.sym("sequence_length");
  const P = g.sym("past_sequence_length");
  const x = g.input("x", [B, T, 6]);
  const past = g.input("past", [B, 2, P, 3]);
  // (B, T, 6) → (B, T, 2, 3) → (B, 2, T, 3), appended to the past along time.
  const heads = E.transpose(E.reshape(x, [B, T, 2, 3]), [0, 2, 1, 3]);
  const present = E.concat([past, heads], 2); // (B, 2, P + T, 3)
  const flat = E.reshape(present, [g.dims.mul(B, 2), g.dims.add(P, T), 3]); // two symbolic dims: run-time shape
  const last = E.take(x, 1, -1); // (B, 6)
  const bias = g.input("bias", [T]);
  const spread = E.expand(E.reshape(bias, [1, T, 1]), [B, T, 6]);
  const outputs = { present, flat, last, spread: E.add(spread, x) };

  it("writes dim_param names for symbolic dims", () => {
    const model = fromBinary(ModelProtoSchema, E.toOnnxBytes(g, outputs));
    const dims = (name: string) => {
      const type = [...model.graph!.input, ...model.graph!.output].find((v) => v.name === name)!.type!.value;
      if (type.case !== "tensorType") throw new Error(`${name} is not a tensor`);
      return type.value.shape!.dim.map((d) => d.value.value);
    };
    expect(dims("x")).toEqual(["batch_size", "sequence_length", 6n]);
    expect(dims("present")).toEqual(["batch_size", 2n, "past_sequence_length + sequence_length", 3n]);
    expect(dims("flat")).toEqual(["2 x batch_size", "past_sequence_length + sequence_length", 3n]);
  });

  it("runs one session at several sizes, with an empty past", async () => {
    const compiled = await CompiledGraph.compile(g, outputs);
    for (const [b, t, p] of [
      [1, 1, 0],
      [2, 3, 4],
      [3, 5, 1],
    ] as const) {
      const xs = Float32Array.from({ length: b * t * 6 }, (_, i) => i);
      const ps = Float32Array.from({ length: b * 2 * p * 3 }, (_, i) => -1 - i);
      const bs = Float32Array.from({ length: t }, (_, i) => 100 * i);
      const out = await compiled.run({ x: { data: xs, shape: [b, t, 6] }, past: { data: ps, shape: [b, 2, p, 3] }, bias: { data: bs, shape: [t] } });
      expect(out.present!.shape).toEqual([b, 2, p + t, 3]);
      expect(out.flat!.shape).toEqual([2 * b, p + t, 3]);
      const pr = out.present!.data as Float32Array;
      for (let bi = 0; bi < b; bi++) {
        for (let h = 0; h < 2; h++) {
          for (let s = 0; s < p + t; s++) {
            for (let d = 0; d < 3; d++) {
              const want = s < p ? ps[((bi * 2 + h) * p + s) * 3 + d]! : xs[(bi * t + (s - p)) * 6 + h * 3 + d]!;
              expect(pr[((bi * 2 + h) * (p + t) + s) * 3 + d]).toBe(want);
            }
          }
        }
      }
      expect([...(out.last!.data as Float32Array)]).toEqual(Array.from({ length: b * 6 }, (_, i) => xs[(Math.floor(i / 6) * t + t - 1) * 6 + (i % 6)]));
      const sp = out.spread!.data as Float32Array;
      expect(sp[sp.length - 1]).toBe(xs[xs.length - 1]! + 100 * (t - 1));
    }
  });

  it("names the symbol a feed disagrees on", async () => {
    const compiled = await CompiledGraph.compile(g, outputs);
    const feeds = { x: { data: new Float32Array(12), shape: [1, 2, 6] }, past: { data: new Float32Array(6), shape: [1, 2, 1, 3] }, bias: { data: new Float32Array(3), shape: [3] } };
    await expect(compiled.run(feeds)).rejects.toThrow(/feed "bias" has shape \[3\]; the graph expects \[sequence_length\]/);
  });
});
