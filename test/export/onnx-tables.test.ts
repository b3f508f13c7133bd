// The embedding and LM head quantized in the ONNX export (issue 17, item 4): `--dtype q4` rounds them
// to 4-bit g32 symmetric tables read by GatherBlockQuantized (rows) and MatMulNBits (logits), one
// tensor for a tied model, and reports it; a model that has such tables keeps them with no --dtype
// and nothing reported. The file's logits in onnxruntime-node equal slimtune's forward of the model
// with those tables (the same tables `slimtune generate` runs).

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { HostParam } from "../../src/arch/params.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { groupChanges } from "../../src/export/changes.js";
import { dequantizedModel } from "../../src/export/deploy.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { llamaHidden, llamaLogits } from "../../src/models/llama/graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import type { LoadedBase } from "../../src/models/load.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { quantizeTables } from "../../src/quant/tables.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { exportedLogits, maxAbsDiff } from "../helpers/onnx-logits.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";
import { GPT2_TINY_CONFIG, saveRandomModel } from "../helpers/tiny-families.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";

describe("ONNX export with the embedding and LM head quantized", () => {
  const dir = scratchDir("onnx-tables");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let ids: number[];
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
    ids = (await tokenizer.encode(PROMPT)).slice(0, 10);
  });

  const q4 = (m: LlamaModel) => quantizeModel(m, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false });

  it("tied: --dtype q4 writes one 4-bit table for both (≥ 3 MB smaller), reports it, and computes the model with that table", async () => {
    const base: LoadedBase = { kind: "quantized", model: q4(model) };
    const own = await exportOnnx(base, REF_MODEL, path.join(dir, "own"), {});
    const asked = await exportOnnx(base, REF_MODEL, path.join(dir, "asked"), { dtype: "q4", accuracyLevel: 0 });
    expect(groupChanges(asked.changes).map((g) => [g.kind, g.from, g.to, g.tensors])).toEqual([
      ["quantized", "float", "GatherBlockQuantized 4-bit g32 symmetric (also the tied LM head through MatMulNBits, one tensor)", "embed_tokens"],
    ]);
    // 4096 × 256 floats (4.19 MB) become 4-bit codes and a float scale per 32 (0.66 MB).
    expect(own.bytes - asked.bytes).toBeGreaterThan(3.4e6);
    const withTables = { ...base.model, tables: quantizeTables(model.config, base.model.dense, 4)! };
    const ours = await slimtuneLogits(withTables, ids);
    // The ops read the table as the host dequantizes it (quant/tables.ts): the float model with those values.
    const host = await floatLogits(dequantizedModel(withTables), ids);
    expect(maxAbsDiff(ours, host) / Math.max(...host.map(Math.abs))).toBeLessThan(1e-5);
    expect(maxAbsDiff(await exportedLogits(path.join(dir, "asked"), model.config, ids), ours) / Math.max(...ours.map(Math.abs))).toBeLessThan(1e-5);
    // The model that has these tables keeps them with no --dtype: nothing changed, the same file size.
    const kept = await exportOnnx({ kind: "quantized", model: withTables }, REF_MODEL, path.join(dir, "kept"), {});
    expect([kept.dtype, kept.changes, kept.bytes]).toEqual(["q4", [], asked.bytes]);
  });

  it("untied: the LM head is its own MatMulNBits table, reported apart from the embedding", async () => {
    const weights = new Map<string, HostParam>(model.weights);
    const embed = model.weights.get("model.embed_tokens.weight")!;
    weights.set("lm_head.weight", { data: embed.data.map((v, i) => v * 0.9 + 0.01 * Math.sin(i)), shape: [...embed.shape] });
    const untied = new LlamaModel({ ...model.config, tieWordEmbeddings: false }, weights, model.sourceDir);
    const base: LoadedBase = { kind: "quantized", model: q4(untied) };
    const r = await exportOnnx(base, REF_MODEL, path.join(dir, "untied"), { dtype: "q8", accuracyLevel: 0 });
    expect(groupChanges(r.changes).filter((g) => g.kind === "quantized").map((g) => [g.to, g.tensors])).toEqual([
      ["GatherBlockQuantized 8-bit g32 symmetric", "embed_tokens"],
      ["MatMulNBits 8-bit g32 symmetric", "lm_head"],
    ]);
    const ours = await slimtuneLogits({ ...base.model, tables: quantizeTables(untied.config, base.model.dense, 8)! }, ids);
    expect(maxAbsDiff(await exportedLogits(path.join(dir, "untied"), untied.config, ids), ours) / Math.max(...ours.map(Math.abs))).toBeLessThan(1e-5);
  });

  it("GPT-2: its wte becomes the tied table too (the rows its own block gathers), reported and computed alike", async () => {
    const folder = path.join(dir, "tiny-g2");
    const gpt2 = saveRandomModel(GPT2_TINY_CONFIG, 5, folder);
    const base: LoadedBase = { kind: "quantized", model: q4(gpt2) };
    const r = await exportOnnx(base, folder, path.join(dir, "gpt2-q4"), { dtype: "q4", accuracyLevel: 0 });
    expect(groupChanges(r.changes).filter((g) => g.kind === "quantized").map((g) => [g.to, g.tensors])).toEqual([
      ["GatherBlockQuantized 4-bit g32 symmetric (also the tied LM head through MatMulNBits, one tensor)", "wte"],
    ]);
    const gids = ids.map((t) => t % gpt2.config.vocabSize);
    const withTables = { ...base.model, tables: quantizeTables(gpt2.config, base.model.dense, 4)! };
    const ours = await slimtuneLogits(withTables, gids);
    const host = await floatLogits(dequantizedModel(withTables), gids);
    expect(maxAbsDiff(ours, host) / Math.max(...host.map(Math.abs))).toBeLessThan(1e-5);
    // Without the table the logits move: the test would pass by accident otherwise.
    expect(maxAbsDiff(await floatLogits(dequantizedModel(base.model), gids), host)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(await exportedLogits(path.join(dir, "gpt2-q4"), gpt2.config, gids), ours) / Math.max(...ours.map(Math.abs))).toBeLessThan(1e-5);
  });
});

async function floatLogits(m: LlamaModel, ids: number[]): Promise<Float32Array> {
  const params = new DenseParams(new Graph(), m.weights, new Set());
  const input = params.graph.input("ids", [1, ids.length], "int64");
  const logits = llamaLogits(m.config, params, llamaHidden(m.config, params, { ids: input }));
  const compiled = await CompiledGraph.compile(params.graph, { logits });
  const out = await compiled.run({ ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
  return out.logits!.data as Float32Array;
}

/** slimtune's exact forward of the quantized model with its tables. */
async function slimtuneLogits(qm: QuantizedModel, ids: number[]): Promise<Float32Array> {
  const params = new QuantizedParams(new Graph(), qm, { fused: true, tables: qm.tables! });
  const input = params.graph.input("ids", [1, ids.length], "int64");
  const logits = llamaLogits(qm.config, params, llamaHidden(qm.config, params, { ids: input }));
  const compiled = await CompiledGraph.compile(params.graph, { logits });
  const out = await compiled.run({ ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
  return out.logits!.data as Float32Array;
}
