// GPTQ folders: save → load round trips on ref-llama-5m (2/3/4/8 bits, group 64 and channel), the
// files other tools read (config dicts, tensor names, dtypes, shapes, packed words, g_idx), and
// every inconsistency the loader must reject.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { roundToF16 } from "../../src/core/f16.js";
import { isQuantizedFolder, loadGptqFolder, loadQuantizedFolder, saveGptqFolder } from "../../src/formats/quantized/index.js";
import { SafetensorsFile, type SafetensorsTensor, writeSafetensors } from "../../src/formats/safetensors.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { dequantize } from "../../src/quant/kinds/index.js";
import type { QuantBits, QuantSpec, QuantizedModel } from "../../src/quant/types.js";
import { tinyModel, grid } from "../quant/helpers.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";

const dir = tempDir("gptq");
let model: LlamaModel;
beforeAll(() => {
  model = LlamaModel.load(refModelDir);
});

const rtn = (bits: QuantBits, groupSize: QuantSpec["groupSize"], symmetric = false): QuantSpec => ({ scheme: "rtn", bits, groupSize, symmetric });
const Q0 = "model.layers.0.self_attn.q_proj";

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
}

/** Rewrites a folder's model.safetensors through `edit` (which may drop, add or change tensors). */
function editTensors(folder: string, edit: (tensors: SafetensorsTensor[]) => SafetensorsTensor[]): void {
  const file = path.join(folder, "model.safetensors");
  const st = SafetensorsFile.open(file);
  const tensors = st.names().map((name) => {
    const e = st.entries.get(name)!;
    return { name, dtype: e.dtype, shape: e.shape, data: st.raw(name).slice() } as SafetensorsTensor;
  });
  writeSafetensors(file, edit(tensors), { format: "pt" });
}

function editConfig(folder: string, change: (quant: Record<string, unknown>) => void): void {
  for (const f of ["config.json", "quantize_config.json"]) {
    const file = path.join(folder, f);
    const json = readJson(file);
    change(f === "config.json" ? (json.quantization_config as Record<string, unknown>) : json);
    fs.writeFileSync(file, JSON.stringify(json));
  }
}

/** A fresh copy of a saved folder to tamper with. */
function copyOf(folder: string, name: string): string {
  const to = path.join(dir, name);
  fs.cpSync(folder, to, { recursive: true });
  return to;
}

/** Index of the first difference (NaN-aware), or −1; vitest's deep equality is far too slow for millions of elements. */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

function expectRoundTrip(qm: QuantizedModel, loaded: QuantizedModel): void {
  expect(loaded.spec).toEqual(qm.spec);
  expect([...loaded.linears.keys()]).toEqual([...qm.linears.keys()]);
  for (const [name, layer] of qm.linears) {
    const q = grid(layer);
    const l = grid(loaded.linears.get(name));
    expect([l.outFeatures, l.inFeatures, l.groupSize]).toEqual([q.outFeatures, q.inFeatures, q.groupSize]);
    expect(firstDiff(l.codes, q.codes), `${name} codes`).toBe(-1);
    expect(firstDiff(l.zeros!, q.zeros!), `${name} zeros`).toBe(-1);
    // Scales come back rounded to float16; the dequantized weights differ by at most |q − z| · |s − f16(s)|
    // (plus float32 rounding of the two products).
    expect(firstDiff(l.scales, Float32Array.from(q.scales, roundToF16)), `${name} scales`).toBe(-1);
    const a = dequantize(q);
    const b = dequantize(l);
    let worst = 0;
    for (let g = 0; g < q.scales.length; g++) {
      const ds = Math.abs(q.scales[g]! - l.scales[g]!);
      const z = q.zeros![g]!;
      for (let i = g * q.groupSize; i < (g + 1) * q.groupSize; i++) {
        const excess = Math.abs(a[i]! - b[i]!) - Math.abs(q.codes[i]! - z) * ds - 2 ** -23 * (Math.abs(a[i]!) + Math.abs(b[i]!));
        if (excess > worst) worst = excess;
      }
    }
    expect(worst, name).toBeLessThanOrEqual(0);
  }
  expect([...loaded.dense.keys()].sort()).toEqual([...qm.dense.keys()].sort());
  for (const [name, p] of qm.dense) expect(firstDiff(loaded.dense.get(name)!.data, p.data), name).toBe(-1);
}

describe("save → load round trip on ref-llama-5m", () => {
  const cases: Array<[QuantBits, QuantSpec["groupSize"]]> = [
    [2, 64], [2, "channel"], [3, 64], [3, "channel"], [4, 64], [4, "channel"], [8, 64], [8, "channel"],
  ];
  it.each(cases)("%i bits, group %s", (bits, g) => {
    const qm = quantizeModel(model, rtn(bits, g));
    const out = path.join(dir, `rt-${bits}-${g}`);
    saveGptqFolder(out, qm);
    const loaded = loadGptqFolder(out);
    expectRoundTrip(qm, loaded);
    expect(loaded.sourceDir).toBe(out);
    expect(loaded.config.hiddenSize).toBe(256);

    const st = SafetensorsFile.open(path.join(out, "model.safetensors"));
    const G = g === "channel" ? 1 : 256 / g;
    expect(st.entries.get(`${Q0}.qweight`)).toMatchObject({ dtype: "I32", shape: [(256 * bits) / 32, 256] });
    expect(st.entries.get(`${Q0}.qzeros`)).toMatchObject({ dtype: "I32", shape: [G, (256 * bits) / 32] });
    expect(st.entries.get(`${Q0}.scales`)).toMatchObject({ dtype: "F16", shape: [G, 256] });
    expect(st.entries.get(`${Q0}.g_idx`)).toMatchObject({ dtype: "I32", shape: [256] });
    expect(st.entries.get("model.layers.0.mlp.down_proj.qweight")).toMatchObject({ shape: [(704 * bits) / 32, 256] });
    expect(st.entries.get("model.embed_tokens.weight")).toMatchObject({ dtype: "F32", shape: [4096, 256] });
    expect(st.entries.has(`${Q0}.weight`)).toBe(false);
  });

  it("writes the same quantization_config to config.json and quantize_config.json, and copies the tokenizer", () => {
    const out = path.join(dir, "rt-4-64");
    const quant = readJson(path.join(out, "quantize_config.json"));
    const config = readJson(path.join(out, "config.json"));
    expect(config.quantization_config).toEqual(quant);
    expect(quant).toMatchObject({
      quant_method: "gptq",
      bits: 4,
      group_size: 64,
      desc_act: false,
      sym: false,
      checkpoint_format: "gptq",
      format: "gptq",
      pack_dtype: "int32",
      lm_head: false,
    });
    expect(readJson(path.join(dir, "rt-2-channel", "quantize_config.json")).group_size).toBe(-1);
    expect(config.torch_dtype).toBe("float16");
    expect(config.model_type).toBe("llama");
    expect(fs.readFileSync(path.join(out, "tokenizer.json")).equals(fs.readFileSync(path.join(refModelDir, "tokenizer.json")))).toBe(true);
    expect(isQuantizedFolder(out)).toBe(true);
    expect(isQuantizedFolder(refModelDir)).toBe(false);
    expect(isQuantizedFolder(path.join(out, "config.json"))).toBe(false);
  });

  it("packs qweight, qzeros (stored z − 1) and g_idx as the readers expect (checked from raw words)", () => {
    const out = path.join(dir, "rt-4-64");
    const q = grid(quantizeModel(model, rtn(4, 64)).linears.get(Q0));
    const st = SafetensorsFile.open(path.join(out, "model.safetensors"));
    const qweight = new Uint32Array(st.raw(`${Q0}.qweight`).slice().buffer); // [32, 256]
    const qzeros = new Uint32Array(st.raw(`${Q0}.qzeros`).slice().buffer); // [4, 32]
    const gIdx = new Int32Array(st.raw(`${Q0}.g_idx`).slice().buffer);
    for (const n of [0, 1, 77, 255]) {
      for (const r of [0, 5, 31]) {
        let word = 0;
        for (let j = 0; j < 8; j++) word |= q.codes[n * 256 + r * 8 + j]! << (4 * j); // code of input row r·8 + j
        expect(qweight[r * 256 + n]).toBe(word >>> 0);
      }
    }
    for (const g of [0, 3]) {
      for (const c of [0, 31]) {
        let word = 0;
        for (let j = 0; j < 8; j++) word |= (q.zeros![(c * 8 + j) * 4 + g]! - 1) << (4 * j);
        expect(qzeros[g * 32 + c]).toBe(word >>> 0);
      }
    }
    expect(Array.from(gIdx.subarray(60, 68))).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it("symmetric 4-bit: every qzeros word is 0x77777777", () => {
    const out = path.join(dir, "sym4");
    const qm = quantizeModel(model, rtn(4, 64, true));
    saveGptqFolder(out, qm);
    const words = new Uint32Array(SafetensorsFile.open(path.join(out, "model.safetensors")).raw(`${Q0}.qzeros`).slice().buffer);
    expect(Array.from(new Set(words))).toEqual([0x77777777]);
    expect(readJson(path.join(out, "quantize_config.json")).sym).toBe(true);
    expectRoundTrip(qm, loadQuantizedFolder(out));
  });

  it("re-saving a loaded folder gives the same tensors", () => {
    const a = path.join(dir, "rt-3-64");
    const b = path.join(dir, "resaved");
    saveGptqFolder(b, loadGptqFolder(a));
    expect(fs.readFileSync(path.join(b, "model.safetensors")).equals(fs.readFileSync(path.join(a, "model.safetensors")))).toBe(true);
    expect(fs.existsSync(path.join(b, "tokenizer.json"))).toBe(true);
  });

  it("reads gptq_v2 zero points as stored (no +1)", () => {
    const v2 = copyOf(path.join(dir, "rt-4-channel"), "v2");
    editConfig(v2, (q) => {
      q.checkpoint_format = "gptq_v2";
      q.format = "gptq_v2";
    });
    const v1 = grid(loadGptqFolder(path.join(dir, "rt-4-channel")).linears.get(Q0));
    expect(Array.from(grid(loadGptqFolder(v2).linears.get(Q0)).zeros!)).toEqual(Array.from(v1.zeros!, (z) => z - 1));
  });
});

describe("biases (qwen2 q/k/v) are stored F16 and come back rounded", () => {
  it("round trips a tiny qwen2 model with group 32", () => {
    const tiny = tinyModel("qwen2");
    const qm = quantizeModel(tiny, rtn(4, 32));
    const out = path.join(dir, "qwen2");
    saveGptqFolder(out, qm);
    const loaded = loadGptqFolder(out);
    expectRoundTrip(qm, loaded);
    const bias = tiny.weights.get("model.layers.0.self_attn.k_proj.bias")!.data;
    expect(Array.from(grid(loaded.linears.get("model.layers.0.self_attn.k_proj")).bias!)).toEqual(Array.from(bias, roundToF16));
    expect(SafetensorsFile.open(path.join(out, "model.safetensors")).entries.get("model.layers.0.self_attn.k_proj.bias")).toMatchObject({ dtype: "F16", shape: [32] });
    expect(loaded.dense.has("lm_head.weight")).toBe(true);
  });
});

describe("what saveGptqFolder refuses", () => {
  it("a zero point of 0 (v1 cannot store it)", () => {
    const qm = quantizeModel(tinyModel("llama"), rtn(4, 32));
    grid(qm.linears.get(Q0)).zeros![3] = 0;
    expectSlimtuneError(() => saveGptqFolder(path.join(dir, "z0"), qm), "E_ARG", "zero point 0", Q0, "v1SafeZeros");
    expect(fs.existsSync(path.join(dir, "z0"))).toBe(false);
  });
  it("an NF4 model", () => {
    const qm = quantizeModel(tinyModel("llama"), { scheme: "nf4", bits: 4, groupSize: 32, symmetric: true });
    expectSlimtuneError(() => saveGptqFolder(path.join(dir, "nf4"), qm), "E_ARG", "saveNf4Folder");
  });
  it("a scale that overflows float16", () => {
    const qm = quantizeModel(tinyModel("llama"), rtn(4, 32));
    grid(qm.linears.get(Q0)).scales[0] = 1e6;
    expectSlimtuneError(() => saveGptqFolder(path.join(dir, "big"), qm), "E_ARG", "1000000", "float16");
  });
  it("a missing layer", () => {
    const qm = quantizeModel(tinyModel("llama"), rtn(4, 32));
    qm.linears.delete("model.layers.0.mlp.up_proj");
    expectSlimtuneError(() => saveGptqFolder(path.join(dir, "missing"), qm), "E_ARG", "model.layers.0.mlp.up_proj", "missing");
  });
});

describe("what loadGptqFolder rejects", () => {
  let base: string;
  beforeAll(() => {
    base = path.join(dir, "tiny-base");
    saveGptqFolder(base, quantizeModel(tinyModel("llama"), rtn(4, 32)));
  });
  const configCases: Array<[string, (q: Record<string, unknown>) => void, string[]]> = [
    ["bits 5", (q) => (q.bits = 5), ['"bits" is 5', "2, 3, 4 or 8"]],
    ["desc_act not a boolean", (q) => (q.desc_act = "yes"), ['"desc_act" is "yes"', "true or false"]],
    ["sym missing", (q) => delete q.sym, ['"sym"', "true or false"]],
    ["group_size 48", (q) => (q.group_size = 48), ['"group_size" is 48']],
    ["group_size 128 does not divide K = 64", (q) => (q.group_size = 128), ['"group_size" 128', "64 input columns (K)", "model.layers.0.self_attn.q_proj"]],
    ["checkpoint_format marlin", (q) => (q.checkpoint_format = "marlin"), ['"checkpoint_format" is "marlin"']],
    ["pack_dtype int16", (q) => (q.pack_dtype = "int16"), ['"pack_dtype"']],
    ["lm_head true", (q) => (q.lm_head = true), ['"lm_head"']],
    ["dynamic overrides", (q) => (q.dynamic = { "-:.*down.*": {} }), ['"dynamic"']],
  ];
  it.each(configCases)("E_CONFIG: %s", (label, change, mentions) => {
    const folder = copyOf(base, `cfg-${label.replace(/\W+/g, "-")}`);
    editConfig(folder, change);
    expectSlimtuneError(() => loadGptqFolder(folder), "E_CONFIG", ...mentions);
  });

  it("E_CONFIG: an unknown quant_method in loadQuantizedFolder", () => {
    const folder = copyOf(base, "awq");
    editConfig(folder, (q) => (q.quant_method = "awq"));
    expectSlimtuneError(() => loadQuantizedFolder(folder), "E_CONFIG", '"awq"', "gptq", "slimtune-nf4");
  });

  it("E_CONFIG: a float model", () => {
    expectSlimtuneError(() => loadQuantizedFolder(refModelDir), "E_CONFIG", "quantization_config", "LlamaModel.load");
  });

  it("E_NOT_FOUND: no such folder", () => {
    expectSlimtuneError(() => loadQuantizedFolder(path.join(dir, "nope")), "E_NOT_FOUND", "nope");
  });

  const tensorCases: Array<[string, (t: SafetensorsTensor[]) => SafetensorsTensor[], "E_SAFETENSORS" | "E_SHAPE", string[]]> = [
    ["missing qzeros", (t) => t.filter((x) => x.name !== `${Q0}.qzeros`), "E_SAFETENSORS", [`"${Q0}.qzeros"`, "model.safetensors"]],
    ["missing g_idx", (t) => t.filter((x) => x.name !== "model.layers.0.mlp.down_proj.g_idx"), "E_SAFETENSORS", ['"model.layers.0.mlp.down_proj.g_idx"']],
    ["missing norm", (t) => t.filter((x) => x.name !== "model.norm.weight"), "E_SAFETENSORS", ['"model.norm.weight"']],
    [
      "qweight of the wrong shape",
      (t) => t.map((x) => (x.name === `${Q0}.qweight` ? { ...x, shape: [64, 8] } : x)),
      "E_SHAPE",
      [`"${Q0}.qweight"`, "[64, 8]", "[8, 64]"],
    ],
    [
      "scales of the wrong shape",
      (t) => t.map((x) => (x.name === `${Q0}.scales` ? { ...x, shape: [1, 128] } : x)),
      "E_SHAPE",
      [`"${Q0}.scales"`, "[2, 64]"],
    ],
    [
      "qzeros stored as F32",
      (t) => t.map((x) => (x.name === `${Q0}.qzeros` ? { ...x, dtype: "F32" } : x)),
      "E_SAFETENSORS",
      [`"${Q0}.qzeros"`, "dtype F32", "I32"],
    ],
    [
      "g_idx with act-order",
      (t) => t.map((x) => (x.name === `${Q0}.g_idx` ? { ...x, data: new Int32Array(64).map((_, i) => i % 2) } : x)),
      "E_SAFETENSORS",
      ["g_idx", Q0, "act-order"],
    ],
  ];
  it.each(tensorCases)("%s", (label, edit, code, mentions) => {
    const folder = copyOf(base, `t-${label.replace(/\W+/g, "-")}`);
    editTensors(folder, edit);
    const err = expectSlimtuneError(() => loadGptqFolder(folder), code, ...mentions);
    expect(err.message).toContain("model.safetensors");
  });

  it("desc_act true: reads an act-order g_idx, refuses groups of the wrong size or out of range", () => {
    const perm = new Int32Array(64).map((_, i) => (i % 2 ? 1 : 0));
    const ok = copyOf(base, "act-order-ok");
    editConfig(ok, (q) => (q.desc_act = true));
    editTensors(ok, (t) => t.map((x) => (x.name === `${Q0}.g_idx` ? { ...x, data: perm } : x)));
    expect(Array.from((loadGptqFolder(ok).linears.get(Q0) as { groupIndex?: Int32Array }).groupIndex!)).toEqual(Array.from(perm));
    const cases: Array<[string, Int32Array, string[]]> = [
      ["uneven", new Int32Array(64).map((_, i) => (i < 40 ? 0 : 1)), ["puts 40 input rows in group 0", "group_size = 32"]],
      ["out of range", new Int32Array(64).map((_, i) => (i === 7 ? 2 : i % 2)), ["input row 7 to group 2", "groups 0…1"]],
    ];
    for (const [label, gIdx, mentions] of cases) {
      const folder = copyOf(base, `act-order-${label.replace(/\W+/g, "-")}`);
      editConfig(folder, (q) => (q.desc_act = true));
      editTensors(folder, (t) => t.map((x) => (x.name === `${Q0}.g_idx` ? { ...x, data: gIdx } : x)));
      expectSlimtuneError(() => loadGptqFolder(folder), "E_SAFETENSORS", ...mentions);
    }
  });

  it("E_SAFETENSORS: sym true with zero points other than 2^(b−1)", () => {
    const folder = copyOf(base, "sym-mismatch");
    editConfig(folder, (q) => (q.sym = true));
    expectSlimtuneError(() => loadGptqFolder(folder), "E_SAFETENSORS", "sym is true", "8");
  });
});
