// quantizeModel over every block linear of ref-llama-5m, the size report, and the z = 0 census.

import { beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { sizeReport } from "../../src/quant/size.js";
import { linearPaths } from "../../src/arch/llama/shapes.js";
import type { RtnStats } from "../../src/quant/kinds/rtn.js";
import type { QuantBits, QuantSpec } from "../../src/quant/types.js";
import { expectSlimtuneError, refModelDir } from "../formats/helpers.js";
import { tinyModel, grid } from "./helpers.js";

let model: LlamaModel;
beforeAll(() => {
  model = LlamaModel.load(refModelDir);
});

const spec = (bits: QuantBits, groupSize: QuantSpec["groupSize"], scheme: QuantSpec["scheme"] = "rtn"): QuantSpec => ({ scheme, bits, groupSize, symmetric: scheme === "nf4" });

// ref-llama-5m: 6 layers × (q 256×256, k/v 128×256, o 256×256, gate/up 704×256, down 256×704).
const quantizedWeights = 6 * (256 * 256 * 2 + 128 * 256 * 2 + 704 * 256 * 3); // 4,423,680
const floatValues = 4096 * 256 + 13 * 256; // tied embedding + 13 norms
const sumK = 6 * (256 * 6 + 704); // Σ K over the 42 layers (g_idx entries)

describe("quantizeModel on ref-llama-5m", () => {
  it("quantizes the 42 block linears and keeps the rest dense, reporting progress", () => {
    const calls: Array<[number, number, string]> = [];
    const qm = quantizeModel(model, spec(4, "channel"), (done, total, layer) => calls.push([done, total, layer]));
    expect([...qm.linears.keys()]).toEqual(linearPaths(model.config));
    expect(qm.linears.size).toBe(42);
    expect([...qm.dense.keys()].sort()).toEqual([...model.weights.keys()].filter((n) => !n.includes("_proj")).sort());
    expect(qm.dense.get("model.embed_tokens.weight")!.data).toBe(model.weights.get("model.embed_tokens.weight")!.data);
    expect(calls.length).toBe(42);
    expect(calls[41]).toEqual([42, 42, "model.layers.5.mlp.down_proj"]);
    expect(qm.sourceDir).toBe(refModelDir);
    const down = grid(qm.linears.get("model.layers.0.mlp.down_proj"));
    expect([down.outFeatures, down.inFeatures, down.groupSize]).toEqual([256, 704, 704]);
  });

  it("fails before any work when the group size does not divide a layer's K, naming the layer", () => {
    let progressed = 0;
    expectSlimtuneError(
      () => quantizeModel(model, spec(4, 128), () => progressed++),
      "E_ARG",
      "group size 128",
      "704 input columns (K) of model.layers.0.mlp.down_proj",
      "use 32, 64 or channel",
    );
    expect(progressed).toBe(0);
  });

  it("never produces a zero point of 0 at channel / 64 / 32 for any bit width (counted before widening)", () => {
    for (const bits of [2, 3, 4, 8] as QuantBits[]) {
      for (const g of ["channel", 64, 32] as Array<QuantSpec["groupSize"]>) {
        const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
        quantizeModel(model, spec(bits, g), undefined, stats);
        expect(stats.zeroPointsAtZero, `${bits} bits, group ${g}`).toBe(0);
      }
    }
  });

  it("normalizes an NF4 spec to symmetric", () => {
    const qm = quantizeModel(tinyModel("llama"), { scheme: "nf4", bits: 4, groupSize: 32, symmetric: false });
    expect(qm.spec).toMatchObject({ symmetric: true });
  });

  it("keeps biases on their quantized layers (qwen2 q/k/v)", () => {
    const tiny = tinyModel("qwen2");
    const qm = quantizeModel(tiny, spec(4, 32));
    expect(grid(qm.linears.get("model.layers.0.self_attn.q_proj")).bias).toBe(tiny.weights.get("model.layers.0.self_attn.q_proj.bias")!.data);
    expect(grid(qm.linears.get("model.layers.0.self_attn.o_proj")).bias).toBeNull();
    expect([...qm.dense.keys()].some((n) => n.includes("_proj"))).toBe(false);
  });
});

describe("sizeReport on ref-llama-5m", () => {
  // [bits, group, scheme, groups (Σ N·G), scale bytes each]
  const table: Array<[QuantBits, QuantSpec["groupSize"], QuantSpec["scheme"], number, number]> = [
    [4, "channel", "rtn", 14592, 2],
    [4, 64, "rtn", 69120, 2],
    [3, "channel", "rtn", 14592, 2],
    [3, 64, "rtn", 69120, 2],
    [2, "channel", "rtn", 14592, 2],
    [8, 32, "rtn", 138240, 2],
    [4, 64, "nf4", 69120, 4],
  ];
  it.each(table)("%i bits, group %s, %s", (bits, g, scheme, groups, scaleSize) => {
    const r = sizeReport(quantizeModel(model, spec(bits, g, scheme)));
    const nf4 = scheme === "nf4";
    expect(r.quantizedWeights).toBe(quantizedWeights);
    expect(r.floatValues).toBe(floatValues);
    expect(r.codeBytes).toBe((quantizedWeights * bits) / 8);
    expect(r.scaleBytes).toBe(groups * scaleSize);
    expect(r.zeroBytes).toBe(nf4 ? 0 : (groups * bits) / 8);
    expect(r.groupIndexBytes).toBe(nf4 ? 0 : 4 * sumK);
    expect(r.denseBytes).toBe(4 * floatValues);
    expect(r.totalBytes).toBe(r.codeBytes + r.scaleBytes + r.zeroBytes + r.groupIndexBytes + r.denseBytes);
    expect(r.bitsPerWeight).toBeCloseTo(((r.codeBytes + r.scaleBytes + r.zeroBytes) * 8) / quantizedWeights, 12);
    expect(r.bitsPerWeightModel).toBeCloseTo((r.totalBytes * 8) / (quantizedWeights + floatValues), 12);
    expect(r.floatBytes).toBe(4 * (quantizedWeights + floatValues));
  });

  it("4-bit per channel: 4 + 18/N bits per weight (F16 scale + 4-bit zero per row)", () => {
    const r = sizeReport(quantizeModel(model, spec(4, "channel")));
    expect(r.totalBytes).toBe(6_509_696);
    expect(r.bitsPerWeight).toBeCloseTo(4 + (14592 * 20) / quantizedWeights, 12); // 4.0660
  });

  it("NF4 with blocks of 64: exactly 4.5 bits per weight (float32 absmax, no double quantization)", () => {
    expect(sizeReport(quantizeModel(model, spec(4, 64, "nf4"))).bitsPerWeight).toBe(4.5);
  });
});
