// Every op's VJP against float64 finite differences through ONNX Runtime, and a check that the
// table (op-grad-cases.ts) has a row for every op that declares a VJP.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { Graph } from "../../src/engine/index.js";
import { gradCheck } from "./gradcheck.js";
import { cases } from "./op-grad-cases.js";

const OPS_DIR = new URL("../../src/engine/ops", import.meta.url).pathname;

/** Op types whose OpDef in src/engine/ops declares a `vjp` (read from the source, so a new op is seen). */
function opTypesWithVjp(): Set<string> {
  const types = new Set<string>();
  for (const file of fs.readdirSync(OPS_DIR).filter((f) => f.endsWith(".ts"))) {
    const src = fs.readFileSync(path.join(OPS_DIR, file), "utf8");
    // Mutation testing (bench/mutation.mjs) runs this on Stryker's instrumented copy, where the
    // literal reads `type: stryMutAct_…("12") ? "" : (stryCov_…("12"), "MatMul"),`.
    const instrumented = String.raw`(?:stryMutAct_\w+\("\d+"\)\s*\?\s*""\s*:\s*\(stryCov_\w+\("\d+"\),\s*)?`;
    for (const m of src.matchAll(new RegExp(String.raw`type:\s*${instrumented}"(\w+)"\)?,\s*vjp\s*:`, "g"))) types.add(m[1]!);
  }
  return types;
}

describe("op gradients match float64 finite differences (rtol 1e-5, atol 1e-8 unless the row says)", () => {
  it.each(cases)("%s", async (_name, build, inputs, opts) => {
    const { worst, checked } = await gradCheck(build, inputs, opts);
    expect(checked).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(1);
  });

  it("detects a wrong gradient (the check can fail)", async () => {
    // Exp whose VJP forgets the exp(x) factor.
    const brokenExp: E.OpDef = { type: "Exp", vjp: (_node, dy) => [dy] };
    const { worst } = await gradCheck((g, [x]) => g.add(brokenExp, [x!], x!.shape, x!.dtype), [{ shape: [6] }]);
    expect(worst).toBeGreaterThan(1);
  });

  it("every op with a VJP is differentiated by some row of the table", () => {
    const declared = opTypesWithVjp();
    // Guards the source scan itself: these ops are known to carry VJPs.
    for (const t of ["Add", "Erf", "Sin", "Cos", "Cast", "MatMul", "Gather", "Softmax"]) expect(declared, t).toContain(t);
    const exercised = new Set<string>();
    for (const [, build, inputs] of cases) {
      const g = new Graph();
      const xs = inputs.map((inp, i) => g.input(`x${i}`, inp.shape, inp.dtype ?? "float64"));
      build(g, xs);
      for (const node of g.nodes) if (node.op.vjp) exercised.add(node.op.type);
    }
    expect([...declared].filter((t) => !exercised.has(t)).sort()).toEqual([]);
  });
});
