// What `eval` and `generate` call a model: the loaded folder or file says what it is — a GPTQ folder
// is not "rtn", a Q4_0 GGUF file is not a "float model", and bits, group size and symmetry show.

import path from "node:path";
import { describe, expect, it } from "vitest";
import { exportGguf } from "../../src/export/gguf/model.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { describeBase } from "../../src/models/describe.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadBase } from "../../src/models/load.js";
import { removeStructure } from "../../src/prune/surgery.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantSpec } from "../../src/quant/types.js";
import { refModelDir, tempDir } from "../formats/helpers.js";

const dir = tempDir("describe");
const model = LlamaModel.load(refModelDir);
const rtn3: QuantSpec = { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false };

/** Saves `model` quantized by `plan` (recording `method` as a quantizer would) and describes the folder as loaded. */
function describeSaved(name: string, plan: Parameters<typeof quantizeModel>[1], method?: string): string {
  const out = path.join(dir, name);
  const qm = quantizeModel(model, plan);
  saveQuantizedFolder(out, method ? { ...qm, method: { name: method } } : qm);
  return describeBase(loadBase(out));
}

describe("describeBase", () => {
  it("names the float folder, and a pruned one by its per-layer widths", () => {
    expect(describeBase(loadBase(refModelDir))).toBe("float model");
    const keep = Array.from({ length: model.config.numLayers }, (_, i) => ({
      heads: [...Array(i === 0 ? 4 : 8).keys()],
      kvHeads: [...Array(i === 0 ? 2 : 4).keys()],
      channels: [...Array(704).keys()],
    }));
    const pruned = path.join(dir, "pruned");
    removeStructure(model, keep).model.save(pruned);
    expect(describeBase(loadBase(pruned))).toBe("float model with per-layer widths (pruned)");
  });

  it("names the method a GPTQ folder records, with bits, group size and symmetry", () => {
    expect(describeSaved("gptq3", rtn3, "gptq")).toBe("GPTQ 3-bit model (groups of 64, asymmetric)");
    expect(describeSaved("rtn4", { ...rtn3, bits: 4, groupSize: "channel", symmetric: true })).toBe("RTN 4-bit model (per output channel, symmetric)");
    expect(describeSaved("lq3", rtn3, "lqlora")).toBe("LQ-LoRA residual RTN 3-bit model (groups of 64, asymmetric)");
  });

  it("names NF4 and mixed precision", () => {
    expect(describeSaved("nf4", { scheme: "nf4", bits: 4, groupSize: 64, symmetric: true })).toBe("NF4 4-bit model (blocks of 64)");
    const mixed = describeSaved("mixed", (p) => ({ ...rtn3, bits: p.includes("mlp") ? 2 : 4 }));
    expect(mixed).toMatch(/^RTN mixed-precision \(2\/4-bit by layer\) model \(groups of 64, asymmetric\)$/);
  });

  it("names a GGUF file's tensor type", () => {
    for (const dtype of ["q4_0"] as const) {
      const file = path.join(dir, `m-${dtype}.gguf`);
      exportGguf({ kind: "float", model }, refModelDir, file, { dtype });
      expect(describeBase(loadBase(file))).toBe(`${dtype.toUpperCase()} GGUF file (dequantized to float)`);
    }
  });
});
