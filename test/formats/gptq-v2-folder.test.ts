// GPTQ v2 folders (export --format gptq-v2), checked against what GPTQModel's loader requires. Read
// in ModelCloud/GPTQModel (gptqmodel/models/loader.py, from_quantized; quantization/config.py):
// - QuantizeConfig.from_quant_config takes the runtime format from "format" (FORMAT_FIELD_CODE) and
//   keeps "checkpoint_format" beside it; resolve_quant_format(qcfg.format, …) gives format_code.
// - from_quantized raises "Loading of a sym=False model with format=gptq is only supported if produced
//   by gptqmodel version >= 0.9.0" only inside `if format_code == FORMAT.GPTQ` — a slimtune v1
//   folder with sym false is refused there; the v1 → v2 zero-point conversion is in the same branch.
// - format "gptq_v2" skips that branch: the checkpoint is loaded as is, zero points taken as stored.
// - is_quantized_by_gptaq() reads meta.quantizer for "gptqmodel:<version>": we write slimtune's own
//   name there, so the v2 route is the honest one (no claim to be GPTQModel).
// So a v2 folder must say "format": "gptq_v2" (and checkpoint_format the same), store z itself in
// qzeros (v1 stores z − 1), and keep everything else as v1 does.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { exportGptqV2 } from "../../src/export/gptq-v2.js";
import { loadGptqFolder, saveGptqFolder } from "../../src/formats/quantized/index.js";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { unpackAlongAxis } from "../../src/quant/pack.js";
import type { QuantizedModel, RtnLinear } from "../../src/quant/types.js";
import { refModelDir, tempDir } from "./helpers.js";

const dir = tempDir("gptq-v2");
const Q0 = "model.layers.0.self_attn.q_proj";
let model: LlamaModel;
let asym: QuantizedModel;
beforeAll(() => {
  model = LlamaModel.load(refModelDir);
  asym = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false });
});

const config = (folder: string) => JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")).quantization_config as Record<string, unknown>;
const storedZeros = (folder: string, n: number, groups: number, bits: 4) => {
  const st = SafetensorsFile.open(path.join(folder, "model.safetensors"));
  return unpackAlongAxis(new Uint32Array(st.raw(`${Q0}.qzeros`).slice().buffer), groups, n, bits, 1);
};

describe("export --format gptq-v2", () => {
  it("says gptq_v2 in format and checkpoint_format, names slimtune as quantizer, and stores z where v1 stores z − 1", () => {
    const v1 = path.join(dir, "v1");
    const v2 = path.join(dir, "v2");
    saveGptqFolder(v1, asym);
    const r = exportGptqV2({ kind: "quantized", model: asym }, v2);
    expect(r).toEqual({ layers: asym.linears.size, symmetric: false });
    for (const file of [path.join(v2, "config.json"), path.join(v2, "quantize_config.json")]) {
      const raw = JSON.parse(fs.readFileSync(file, "utf8"));
      const q = (raw.quantization_config ?? raw) as Record<string, unknown>;
      expect(q.format, file).toBe("gptq_v2");
      expect(q.checkpoint_format, file).toBe("gptq_v2");
      expect(q.sym).toBe(false);
      expect((q.meta as { quantizer: string[] }).quantizer.every((s) => !s.toLowerCase().startsWith("gptqmodel"))).toBe(true);
    }
    expect(config(v1).format).toBe("gptq");
    const q = asym.linears.get(Q0) as RtnLinear;
    const groups = q.inFeatures / 32;
    const z1 = storedZeros(v1, q.outFeatures, groups, 4);
    const z2 = storedZeros(v2, q.outFeatures, groups, 4);
    for (let i = 0; i < z2.length; i++) expect(z2[i]).toBe(z1[i]! + 1);
    // The same model comes back from both.
    const a = loadGptqFolder(v1).linears.get(Q0) as RtnLinear;
    const b = loadGptqFolder(v2).linears.get(Q0) as RtnLinear;
    expect(Buffer.from(b.codes).equals(Buffer.from(a.codes))).toBe(true);
    expect(Buffer.from(b.zeros).equals(Buffer.from(a.zeros))).toBe(true);
    expect(Buffer.from(b.scales.buffer).equals(Buffer.from(a.scales.buffer))).toBe(true);
  });

  it("v2 stores a zero point of 0, which v1 cannot", () => {
    const q = asym.linears.get(Q0) as RtnLinear;
    const zeros = q.zeros.slice();
    zeros[0] = 0;
    const edited: QuantizedModel = { ...asym, linears: new Map([...asym.linears, [Q0, { ...q, zeros }]]) };
    expect(() => saveGptqFolder(path.join(dir, "v1-zero"), edited)).toThrow(/cannot be stored in a GPTQ v1 checkpoint/);
    exportGptqV2({ kind: "quantized", model: edited }, path.join(dir, "v2-zero"));
    expect((loadGptqFolder(path.join(dir, "v2-zero")).linears.get(Q0) as RtnLinear).zeros[0]).toBe(0);
  });

  it("refuses a float model and non-integer layers with E_ARG", () => {
    expect(() => exportGptqV2({ kind: "float", model }, path.join(dir, "float"))).toThrow(/quantize it first/);
    const nf4 = quantizeModel(model, { scheme: "nf4", bits: 4, groupSize: 64, symmetric: true });
    expect(() => exportGptqV2({ kind: "quantized", model: nf4 }, path.join(dir, "nf4"))).toThrow(/holds integer \(RTN\/GPTQ\) codes/);
  });
});
