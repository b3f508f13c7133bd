// Frozen weights past protobuf's 2 GB cap travel beside the ONNX file: the runtime lifts the largest
// constants into inputs it feeds itself. Checked here with a tiny cap, on a graph whose constants
// include a float weight, a gathered table and int64 shape data.

import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { Rng } from "../../src/core/rng.js";

function build() {
  const rng = new Rng(3);
  const fill = (n: number) => {
    const x = new Float32Array(n);
    rng.fillNormal(x, 1);
    return x;
  };
  const g = new Graph();
  const ids = g.input("ids", [2, 3], "int64");
  const table = g.constant(fill(10 * 4), [10, 4], "float32", "table");
  const w = g.constant(fill(5 * 4), [5, 4], "float32", "w");
  const x = E.reshape(E.gather(table, ids), [6, 4]);
  const y = E.gemm(x, w, { transB: true });
  return { g, outputs: { y } };
}

describe("constants past the initializer cap", () => {
  it("are fed by the runtime, with the same results, and callers still feed only the inputs", async () => {
    const feeds = { ids: { data: BigInt64Array.from([1n, 2n, 3n, 9n, 0n, 4n]), shape: [2, 3] } };
    const a = build();
    const inFile = await CompiledGraph.compile(a.g, a.outputs, { threads: 1 });
    const b = build();
    const lifted = await CompiledGraph.compile(b.g, b.outputs, { threads: 1, maxInitializerBytes: 0 });
    expect([...lifted.inputs.keys()]).toEqual(["ids"]);
    expect(lifted.onnxBytes).toBeLessThan(inFile.onnxBytes - 200);
    const ya = (await inFile.run(feeds)).y!;
    const yb = (await lifted.run(feeds)).y!;
    expect(yb.shape).toEqual([6, 5]);
    expect(Array.from(yb.data as Float32Array)).toEqual(Array.from(ya.data as Float32Array));
  });
});
