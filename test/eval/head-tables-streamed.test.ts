// The embedding/LM head tables built straight from a quantized folder's file, a block of rows at a
// time (formats/quantized/streamed-tables.ts, eval/head-tables.ts's loadWithQuantizedHead, what
// `slimtune generate` loads since session 28), against the old path — loading the float tensors and
// quantizing them (withQuantizedHead): the same tables bit for bit, the same model otherwise, the
// same greedy tokens; tied and untied heads, blocks that do not divide the rows, F16/BF16 rows, and
// Inf/NaN refused as loadBase refuses them.

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { Generator } from "../../src/eval/generate.js";
import { type HeadChoice, loadWithQuantizedHead, withQuantizedHead } from "../../src/eval/head-tables.js";
import { FolderTensors } from "../../src/formats/folder-tensors.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { streamedTables } from "../../src/formats/quantized/streamed-tables.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { loadBase } from "../../src/models/load.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { quantizeTableRows, quantizeTables } from "../../src/quant/tables.js";
import type { QuantizedModel, QuantizedTables, QuantSpec } from "../../src/quant/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const EMBED = "model.embed_tokens.weight";
const SPEC: QuantSpec = { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true };

const quantizedModel = (choice: HeadChoice): QuantizedModel => {
  if (choice.base.kind !== "quantized") throw new Error("expected a quantized model");
  return choice.base.model;
};

function expectSameTables(a: QuantizedTables | undefined, b: QuantizedTables | undefined): void {
  for (const which of ["embedding", "lmHead"] as const) {
    const x = a?.[which];
    const y = b?.[which];
    expect(x).toBeDefined();
    expect([y!.outFeatures, y!.inFeatures, y!.groupSize, y!.spec]).toEqual([x!.outFeatures, x!.inFeatures, x!.groupSize, x!.spec]);
    expect(Buffer.compare(Buffer.from(y!.codes), Buffer.from(x!.codes))).toBe(0);
    expect(Buffer.compare(Buffer.from(y!.scales.buffer), Buffer.from(x!.scales.buffer))).toBe(0);
    expect(Buffer.compare(Buffer.from(y!.zeros), Buffer.from(x!.zeros))).toBe(0);
  }
}

/** Everything but the tables: the same dense tensors (by value) and the same layers. */
function expectSameModel(a: QuantizedModel, b: QuantizedModel): void {
  expect([...b.dense.keys()].sort()).toEqual([...a.dense.keys()].sort());
  for (const [name, p] of a.dense) expect(b.dense.get(name)!.data).toEqual(p.data);
  expect([...b.linears.keys()]).toEqual([...a.linears.keys()]);
  expect(b.config).toEqual(a.config);
}

describe("embedding/LM head tables streamed from the file", () => {
  let float: LlamaModel;
  let tiedDir: string;
  let untiedDir: string;
  beforeAll(() => {
    float = LlamaModel.load(REF_MODEL);
    tiedDir = path.join(scratchDir("streamed-tables"), "q4");
    saveQuantizedFolder(tiedDir, quantizeModel(float, SPEC));
    // An untied copy: its own lm_head (the embedding reversed, so the two tables differ).
    const config = { ...float.config, tieWordEmbeddings: false, raw: { ...float.config.raw, tie_word_embeddings: false } };
    const weights = new Map(float.weights);
    const embed = float.weights.get(EMBED)!;
    weights.set("lm_head.weight", { data: embed.data.slice().reverse(), shape: embed.shape });
    untiedDir = path.join(scratchDir("streamed-tables"), "q4-untied");
    saveQuantizedFolder(untiedDir, quantizeModel(new LlamaModel(config, weights, REF_MODEL), SPEC));
  });

  it.each([4, 8] as const)("%i-bit tables, tied and untied: bit for bit those of withQuantizedHead on the loaded floats, and no float copy", (bits) => {
    for (const dir of [tiedDir, untiedDir]) {
      const old = withQuantizedHead(loadBase(dir), bits);
      const streamed = loadWithQuantizedHead(dir, bits);
      expect(streamed.head).toBe(old.head);
      expect(streamed.bits).toBe(bits);
      const [a, b] = [quantizedModel(old), quantizedModel(streamed)];
      expectSameTables(a.tables, b.tables);
      expectSameModel(a, b);
      expect(b.dense.has(EMBED)).toBe(false);
      expect(b.dense.has("lm_head.weight")).toBe(false);
      const tied = dir === tiedDir;
      expect(b.tables!.lmHead === b.tables!.embedding).toBe(tied);
    }
  });

  it("--head-bits float and a float folder load as before", () => {
    const kept = loadWithQuantizedHead(tiedDir, "float");
    expect(kept.bits).toBeNull();
    expect(quantizedModel(kept).dense.has(EMBED)).toBe(true);
    const floatFolder = loadWithQuantizedHead(REF_MODEL, 4);
    expect(floatFolder.base.kind).toBe("float");
    expect(floatFolder.head).toBe("float32");
  });

  it("blocks that do not divide the rows give the whole matrix's table", () => {
    const embed = float.weights.get(EMBED)!;
    const [n, k] = embed.shape as [number, number];
    const whole = quantizeTables(float.config, float.weights, 4)!;
    for (const blockRows of [1, 7, 1000, n + 5]) {
      const reads: number[] = [];
      const table = quantizeTableRows((row0, rows) => {
        reads.push(rows);
        return embed.data.slice(row0 * k, (row0 + rows) * k);
      }, n, k, 4, blockRows);
      expectSameTables(whole, { embedding: table, lmHead: table });
      expect(Math.max(...reads)).toBe(Math.min(blockRows, n));
      expect(reads.reduce((s, r) => s + r, 0)).toBe(n);
    }
    const fromFile = streamedTables(FolderTensors.open(tiedDir), float.config, 8, 33);
    expectSameTables(quantizeTables(float.config, float.weights, 8)!, fromFile);
  });

  it("reads F32, F16 and BF16 rows as the whole tensor's float32 values; a range outside the tensor is E_ARG", () => {
    const file = path.join(scratchDir("streamed-rows"), "rows.safetensors");
    const values = Float32Array.from({ length: 6 * 5 }, (_, i) => (i - 13) / 7);
    const u16 = (f: (x: number) => number) => Uint16Array.from(values, f);
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    const bf16 = (x: number) => {
      f32[0] = x;
      return bits[0]! >>> 16;
    };
    const f16 = (x: number) => Number(x === 0 ? 0 : Math.sign(x) < 0 ? 0xbc00 : 0x3c00); // ±1: exact in F16
    writeSafetensors(file, [
      { name: "a32", dtype: "F32", shape: [6, 5], data: values },
      { name: "b16", dtype: "BF16", shape: [6, 5], data: u16(bf16) },
      { name: "h16", dtype: "F16", shape: [3, 2, 5], data: u16(f16) },
    ]);
    const st = SafetensorsFile.open(file);
    for (const [name, rowValues] of [["a32", 5], ["b16", 5], ["h16", 10]] as const) {
      const whole = st.float32(name);
      const rows = name === "h16" ? 3 : 6;
      for (const [row0, count] of [[0, 1], [1, 2], [rows - 1, 1], [0, rows], [2, 0]]) {
        expect(st.float32Rows(name, row0!, count!)).toEqual(whole.slice(row0! * rowValues, (row0! + count!) * rowValues));
      }
    }
    expect(() => st.float32Rows("a32", 5, 2)).toThrow(SlimtuneError);
    expect(() => st.float32Rows("a32", -1, 1)).toThrow(/rows \[-1, 0\)/);
  });

  it("Inf or NaN in the embedding is refused naming the tensor and the index, as loadBase refuses it", () => {
    const qm = quantizeModel(float, SPEC);
    const embed = qm.dense.get(EMBED)!;
    const data = embed.data.slice();
    data[1234] = Number.NaN;
    qm.dense.set(EMBED, { data, shape: embed.shape });
    const dir = path.join(scratchDir("streamed-nan"), "q4");
    saveQuantizedFolder(dir, qm);
    expect(() => loadBase(dir)).toThrow(/model\.embed_tokens\.weight holds NaN at index 1234/);
    expect(() => loadWithQuantizedHead(dir, 4)).toThrow(/model\.embed_tokens\.weight holds NaN at index 1234/);
  });

  it("generates the same greedy tokens as the model whose tables were quantized from the loaded floats", async () => {
    const tokenizer = await loadTokenizer(REF_MODEL);
    const run = async (choice: HeadChoice) => {
      const g = await Generator.create(baseScoring(choice.base, { generation: true }), tokenizer, {}, { releaseHostCodes: true });
      const r = await g.generate(" The tower is", { maxNewTokens: 12, temperature: 0, eosTokenIds: [] });
      await g.release();
      return r.ids;
    };
    const streamed = await run(loadWithQuantizedHead(tiedDir, 4));
    expect(streamed).toHaveLength(12);
    expect(streamed).toEqual(await run(withQuantizedHead(loadBase(tiedDir), 4)));
  });
});
