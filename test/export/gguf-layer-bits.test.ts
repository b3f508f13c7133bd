// A mixed-precision model (per-layer bits, as quantize --budget-mb or QPruner make) exported with
// --dtype layer-bits: each layer at the ggml type of its own bits — codes kept where the grid is a
// ggml type's (4-bit asymmetric g32 → Q4_1, 8-bit symmetric g32 → Q8_0), otherwise re-rounded onto
// the k-quant of its width (2-bit → Q2_K, 3-bit → Q3_K; a row that is not whole super-blocks takes
// llama.cpp's fallback), each such change reported and measured. Without --dtype it is E_ARG naming
// the option. llama.cpp runs the file; slimtune reads it back.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { roundToF16 } from "../../src/core/f16.js";
import { tokenizeFile } from "../../src/data/text-file.js";
import { groupChanges, measureChanges } from "../../src/export/changes.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel, QuantSpec } from "../../src/quant/types.js";
import { llamaPerplexity } from "../helpers/llama-cpp.js";
import { REF_MODEL, WIKITEXT_TEST, scratchDir } from "../helpers/paths.js";

/** Layers 0–1 at 2 bits g32, 2–3 at 3 bits g64, 4 at 4 bits asymmetric g32, 5 at 8 bits symmetric g32. */
function specOf(layerPath: string): QuantSpec {
  const layer = Number(/layers\.(\d+)\./.exec(layerPath)![1]);
  if (layer < 2) return { scheme: "rtn", bits: 2, groupSize: 32, symmetric: false };
  if (layer < 4) return { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false };
  if (layer === 4) return { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false };
  return { scheme: "rtn", bits: 8, groupSize: 32, symmetric: true };
}

describe("--dtype layer-bits: a mixed-precision model at its per-layer bits", () => {
  const dir = scratchDir("gguf-layer-bits");
  let qm: QuantizedModel;
  beforeAll(() => {
    const q = quantizeModel(LlamaModel.load(REF_MODEL), specOf);
    // Scales as a folder holds them (float16 values).
    qm = { ...q, linears: new Map([...q.linears].map(([p, l]) => [p, l.kind === "reallm" ? l : { ...l, scales: l.scales.map(roundToF16) }])) };
  });

  it("without --dtype: E_ARG naming --dtype layer-bits", () => {
    expect(() => exportGguf({ kind: "quantized", model: qm }, REF_MODEL, path.join(dir, "refused.gguf"), {})).toThrow(/2-bit g32 asymmetric \(layers 0–1 .*3-bit g64 asymmetric \(layers 2–3 .*--dtype layer-bits/);
  });

  it("each layer at its own width's type, codes kept where the grid coincides; changes measured; llama.cpp runs it", async () => {
    const file = path.join(dir, "mixed.gguf");
    const r = exportGguf({ kind: "quantized", model: qm }, REF_MODEL, file, { dtype: "layer-bits", keepDecoded: true });
    const g = readGgufHeader(file);
    const typeOf = (n: string) => g.tensors.get(n)!.type.name;
    for (const i of [0, 1]) expect([typeOf(`blk.${i}.attn_q.weight`), typeOf(`blk.${i}.ffn_down.weight`)]).toEqual(["Q2_K", "Q4_0"]);
    for (const i of [2, 3]) expect([typeOf(`blk.${i}.attn_v.weight`), typeOf(`blk.${i}.ffn_down.weight`)]).toEqual(["Q3_K", "Q4_0"]);
    expect([typeOf("blk.4.attn_q.weight"), typeOf("blk.4.ffn_down.weight")]).toEqual(["Q4_1", "Q4_1"]);
    expect([typeOf("blk.5.attn_q.weight"), typeOf("blk.5.ffn_down.weight")]).toEqual(["Q8_0", "Q8_0"]);
    // Float tensors stay float (the embeddings are F32 in ref-llama-5m).
    expect(typeOf("token_embd.weight")).toBe("F32");
    expect(r.keptCodes).toBe(14);
    const groups = groupChanges(r.changes.filter((c) => c.kind === "re-rounded"));
    expect(groups.map((x) => `${x.from} → ${x.to}: ${x.tensors}`).sort()).toEqual([
      "2-bit g32 asymmetric → Q2_K: layers 0–1 q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj",
      "2-bit g32 asymmetric → Q4_0: layers 0–1 down_proj",
      "3-bit g64 asymmetric → Q3_K: layers 2–3 q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj",
      "3-bit g64 asymmetric → Q4_0: layers 2–3 down_proj",
    ]);
    const tokenizer = await loadTokenizer(REF_MODEL);
    const tokens = tokenizeFile(WIKITEXT_TEST, tokenizer, 1024);
    const measured = await measureChanges({ kind: "quantized", model: qm }, r.changes, tokens.subarray(0, 512), 128);
    console.log(`layer-bits: ${measured.groups.map((x) => `${x.kind} ${x.from} → ${x.to} KL ${x.kl!.toExponential(2)}`).join("; ")}; all ${measured.totalKl.toExponential(3)}`);
    expect(measured.totalKl).toBeGreaterThan(0);
    // Matrices at about their own bits: within 1.3× of the codes' bits plus one f16 scale per group.
    const ownBits = [...qm.linears.values()].reduce((a, l) => a + (l.kind === "reallm" ? 0 : l.outFeatures * l.inFeatures * (l.spec.bits + 16 / l.groupSize)), 0);
    const fileBits = [...g.tensors.values()].filter((t) => t.name.startsWith("blk.") && t.ne.length === 2).reduce((a, t) => a + 8 * t.bytes, 0);
    console.log(`matrices: ${(ownBits / 8 / 1e6).toFixed(3)} MB of codes and scales in the model, ${(fileBits / 8 / 1e6).toFixed(3)} MB in the file; file ${fs.statSync(file).size} B`);
    expect(fileBits / ownBits).toBeLessThan(1.3);
    const back = loadBase(file);
    expect(back.kind).toBe("float");
    expect(Number.isFinite(await llamaPerplexity(file, tokens, 256))).toBe(true);
  });
});
