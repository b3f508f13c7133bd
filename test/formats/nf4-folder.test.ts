// The slimtune-nf4 folder layout: exact save → load round trip, the documented config and tensors
// (nibble order included), dispatch through loadQuantizedFolder, and what the loader rejects.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { isQuantizedFolder, loadQuantizedFolder, saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { loadNf4Folder, packNf4Codes, saveNf4Folder, unpackNf4Codes } from "../../src/formats/quantized/nf4-folder.js";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { nf4Codebook } from "../../src/quant/kinds/nf4.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantSpec, QuantizedModel } from "../../src/quant/types.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";
import { tinyModel, grid } from "../quant/helpers.js";

const dir = tempDir("nf4-format");
const nf4 = (groupSize: QuantSpec["groupSize"] = 64): QuantSpec => ({ scheme: "nf4", bits: 4, groupSize, symmetric: true });
const Q0 = "model.layers.0.self_attn.q_proj";

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function expectIdentical(a: QuantizedModel, b: QuantizedModel): void {
  expect(b.spec).toEqual(a.spec);
  expect([...b.linears.keys()]).toEqual([...a.linears.keys()]);
  for (const [name, layer] of a.linears) {
    const q = grid(layer);
    const l = grid(b.linears.get(name));
    expect([l.outFeatures, l.inFeatures, l.groupSize, l.zeros]).toEqual([q.outFeatures, q.inFeatures, q.groupSize, null]);
    expect(same(l.codes, q.codes), `${name} codes`).toBe(true);
    expect(same(l.scales, q.scales), `${name} absmax`).toBe(true);
    expect(l.bias === null ? null : same(l.bias, q.bias!)).toBe(q.bias === null ? null : true);
  }
  for (const [name, p] of a.dense) expect(same(b.dense.get(name)!.data, p.data), name).toBe(true);
}

describe("nibble packing", () => {
  it("puts the even column in the high nibble (bitsandbytes' order)", () => {
    expect(Array.from(packNf4Codes(Uint8Array.from([1, 2, 15, 0, 7, 8])))).toEqual([0x12, 0xf0, 0x78]);
    expect(Array.from(unpackNf4Codes(Uint8Array.from([0x12, 0xf0, 0x78])))).toEqual([1, 2, 15, 0, 7, 8]);
  });
});

describe("ref-llama-5m round trip", () => {
  let model: LlamaModel;
  let qm: QuantizedModel;
  const out = path.join(dir, "nf4-64");
  beforeAll(() => {
    model = LlamaModel.load(refModelDir);
    qm = quantizeModel(model, nf4(64));
    saveNf4Folder(out, qm);
  });

  it("loads back exactly (codes, float32 absmax, dense tensors)", () => {
    const loaded = loadNf4Folder(out);
    expectIdentical(qm, loaded);
    expect(loaded.sourceDir).toBe(out);
  });

  it("writes the documented config and tensors", () => {
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    expect(config.quantization_config).toEqual({
      quant_method: "slimtune-nf4",
      format_version: 1,
      bits: 4,
      quant_type: "nf4",
      block_size: 64,
      double_quant: false,
      nibble_order: "high_first",
      codebook: Array.from(nf4Codebook),
    });
    expect(config.torch_dtype).toBe("float32");
    expect(fs.existsSync(path.join(out, "quantize_config.json"))).toBe(false);
    expect(fs.existsSync(path.join(out, "tokenizer.json"))).toBe(true);
    const st = SafetensorsFile.open(path.join(out, "model.safetensors"));
    expect(st.entries.get(`${Q0}.nf4_codes`)).toMatchObject({ dtype: "U8", shape: [256, 128] });
    expect(st.entries.get(`${Q0}.absmax`)).toMatchObject({ dtype: "F32", shape: [256, 4] });
    expect(st.entries.get("model.layers.0.mlp.down_proj.nf4_codes")).toMatchObject({ shape: [256, 352] });
    expect(st.entries.get("model.layers.0.mlp.down_proj.absmax")).toMatchObject({ shape: [256, 11] });
    const bytes = st.raw(`${Q0}.nf4_codes`);
    const codes = grid(qm.linears.get(Q0)).codes;
    expect(bytes[0]).toBe((codes[0]! << 4) | codes[1]!);
    expect(bytes[128 + 5]).toBe((codes[256 + 10]! << 4) | codes[256 + 11]!);
  });

  it("is found by isQuantizedFolder and loadQuantizedFolder", () => {
    expect(isQuantizedFolder(out)).toBe(true);
    expectIdentical(qm, loadQuantizedFolder(out));
  });

  it("one block per row (channel) is written as block_size -1", () => {
    const ch = path.join(dir, "nf4-channel");
    const q = quantizeModel(model, nf4("channel"));
    saveQuantizedFolder(ch, q);
    expect(JSON.parse(fs.readFileSync(path.join(ch, "config.json"), "utf8")).quantization_config.block_size).toBe(-1);
    expectIdentical(q, loadQuantizedFolder(ch));
  });
});

describe("biases and an untied lm_head", () => {
  it("round trip a tiny qwen2 model exactly", () => {
    const qm = quantizeModel(tinyModel("qwen2"), nf4(32));
    const out = path.join(dir, "qwen2");
    saveNf4Folder(out, qm);
    const loaded = loadNf4Folder(out);
    expectIdentical(qm, loaded);
    expect(grid(loaded.linears.get("model.layers.0.self_attn.v_proj")).bias).not.toBeNull();
    expect(loaded.dense.has("lm_head.weight")).toBe(true);
  });
});

describe("what the NF4 loader and saver reject", () => {
  let base: string;
  beforeAll(() => {
    base = path.join(dir, "tiny");
    saveNf4Folder(base, quantizeModel(tinyModel("llama"), nf4(32)));
  });
  const cases: Array<[string, (q: Record<string, unknown>) => void, string[]]> = [
    ["format_version 2", (q) => (q.format_version = 2), ['"format_version" is 2']],
    ["bits 3", (q) => (q.bits = 3), ['"bits" is 3']],
    ["another code book", (q) => ((q.codebook as number[])[3] = 0), ['"codebook"']],
    ["double quantization", (q) => (q.double_quant = true), ['"double_quant"']],
    ["block 128 > K = 64", (q) => (q.block_size = 128), ['"block_size" 128', "64 input columns (K)"]],
  ];
  it.each(cases)("E_CONFIG: %s", (label, change, mentions) => {
    const folder = path.join(dir, `bad-${label.replace(/\W+/g, "-")}`);
    fs.cpSync(base, folder, { recursive: true });
    const file = path.join(folder, "config.json");
    const json = JSON.parse(fs.readFileSync(file, "utf8"));
    change(json.quantization_config);
    fs.writeFileSync(file, JSON.stringify(json));
    expectSlimtuneError(() => loadQuantizedFolder(folder), "E_CONFIG", ...mentions);
  });

  it("saveNf4Folder refuses an RTN model", () => {
    const qm = quantizeModel(tinyModel("llama"), { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false });
    expectSlimtuneError(() => saveNf4Folder(path.join(dir, "rtn"), qm), "E_ARG", "saveGptqFolder");
  });
});
