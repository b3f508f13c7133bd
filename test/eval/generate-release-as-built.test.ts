// A model handed over to a generator lets go of each layer's codes as soon as that layer's constants
// exist (QuantizedParams.releaseCodesAsBuilt, what Generator.create does since session 28), so the
// graph build never holds every layer's one-byte codes beside the packed blocks already made.

import { describe, expect, it } from "vitest";
import { Graph } from "../../src/engine/index.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL } from "../helpers/paths.js";

describe("QuantizedParams.releaseCodesAsBuilt", () => {
  it("frees the tables' codes at once and each layer's when it is built, no other layer's", () => {
    const q4 = quantizeModel(LlamaModel.load(REF_MODEL), { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true });
    const { base } = withQuantizedHead({ kind: "quantized", model: q4 }, 4);
    if (base.kind !== "quantized") throw new Error("expected a quantized model");
    const qm = base.model;
    const g = new Graph();
    const params = new QuantizedParams(g, qm, { fused: true, accuracyLevel: 4, dequantizeUnfused: true, tables: qm.tables! });
    const codes = (path: string) => {
      const q = qm.linears.get(path)!;
      return q.kind === "reallm" ? -1 : q.codes.length;
    };
    const q0 = "model.layers.0.self_attn.q_proj";
    const k0 = "model.layers.0.self_attn.k_proj";
    const full = codes(q0);
    expect(full).toBe(256 * 256);

    const tableBytes = qm.tables!.embedding!.codes.byteLength;
    expect(params.releaseCodesAsBuilt()).toBe(tableBytes); // nothing built yet but the tables
    expect(qm.tables!.embedding!.codes.length).toBe(0);
    expect(codes(q0)).toBe(full);

    const x = g.input("x", [1, 256]);
    params.linear(q0, x);
    expect(codes(q0)).toBe(0);
    expect(codes(k0)).toBe(codes("model.layers.0.self_attn.v_proj")); // untouched
    expect(codes(k0)).toBeGreaterThan(0);
    params.linear(q0, x); // built once: a second call reads nothing
    params.linear(k0, x);
    expect(codes(k0)).toBe(0);
  });
});
