// ONNX export at each layer's own bits (issue 17, item 4): one file holding 2-, 3- (as 4-bit codes),
// 4- and 8-bit MatMulNBits layers with their own group sizes, zero points and GPTQ act-order. The
// exported graph, run by onnxruntime-node, gives the logits of slimtune's own forward of the
// quantized model, and transformers.js generates slimtune's greedy tokens from it.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { groupChanges } from "../../src/export/changes.js";
import { generationScoring } from "../../src/export/deploy.js";
import { type OnnxExportReport, exportOnnx } from "../../src/export/onnx/index.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { llamaHidden, llamaLogits } from "../../src/models/llama/graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel, QuantSpec, RtnLinear } from "../../src/quant/types.js";
import { argmaxRows, exportedLogits, maxAbsDiff } from "../helpers/onnx-logits.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 12;

const spec = (bits: 2 | 3 | 4 | 8, groupSize: number | "channel", symmetric = false): QuantSpec => ({ scheme: "rtn", bits, groupSize, symmetric });

/** Layer 0–1 MLPs 2-bit g32, layers 2–3 MLPs 3-bit g64 (act-order), attention 4-bit g128, layers 4–5 MLPs 8-bit per channel. */
function mixedModel(model: LlamaModel): QuantizedModel {
  const qm = quantizeModel(model, (p) => {
    const layer = Number(/layers\.(\d+)\./.exec(p)![1]);
    if (!p.includes(".mlp.")) return spec(4, 128, true);
    return layer < 2 ? spec(2, 32) : layer < 4 ? spec(3, 64) : spec(8, "channel");
  });
  for (const [p, q] of qm.linears) if (q.kind === "rtn" && q.spec.bits === 3) qm.linears.set(p, withActOrder(q));
  return qm;
}

/**
 * The layer with its input columns in a scrambled order and g_idx naming each column's group, as
 * GPTQ act-order writes (a different model, which is fine: the export must compute whatever it is).
 */
function withActOrder(q: RtnLinear): RtnLinear {
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const order = Int32Array.from({ length: K }, (_, i) => (i * 37 + 11) % K); // a fixed bijection (37 is odd, K a power of two)
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codes[n * K + k] = q.codes[n * K + order[k]!]!;
  return { ...q, codes, groupIndex: Int32Array.from(order, (c) => Math.floor(c / groupSize)) };
}

describe("export --format onnx writes every layer at its own bits in one file", () => {
  const dir = scratchDir("onnx-per-layer");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let base: LoadedBase;
  let report: OnnxExportReport;
  beforeAll(async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
    base = { kind: "quantized", model: mixedModel(model) };
    report = await exportOnnx(base, REF_MODEL, path.join(dir, "mixed"), {});
  });

  it("no --dtype: written q8 (its widest), the 3-bit layers reported as stored in 4-bit codes, nothing else changed", async () => {
    expect(report.dtype).toBe("q8");
    expect(groupChanges(report.changes).map((g) => [g.kind, g.from, g.to, g.tensors])).toEqual([
      ["widened", "3-bit g64 asymmetric act-order", "MatMulNBits 4-bit (3-bit stored as 4-bit codes, values unchanged)", "layers 2–3 gate_proj, up_proj, down_proj"],
    ]);
  });

  it("the exported graph's logits in onnxruntime-node equal slimtune's forward of the quantized model", async () => {
    const ids = (await tokenizer.encode(PROMPT)).slice(0, 12);
    const exact = await slimtuneLogits(base, ids);
    const scale = Math.max(...exact.map(Math.abs));
    // accuracy_level 0 computes in float32: equal up to summation order.
    await exportOnnx(base, REF_MODEL, path.join(dir, "mixed-exact"), { accuracyLevel: 0 });
    expect(maxAbsDiff(await exportedLogits(path.join(dir, "mixed-exact"), model.config, ids), exact) / scale).toBeLessThan(1e-5);
    // The default file runs accuracy_level 4 (activations rounded to int8 per block, as `slimtune
    // generate` runs them): ~3e-3 relative error (engine-facts.md), and the same greedy tokens.
    const fast = await exportedLogits(path.join(dir, "mixed"), model.config, ids);
    expect(maxAbsDiff(fast, exact) / scale).toBeLessThan(1e-2);
    expect(argmaxRows(fast, model.config.vocabSize)).toEqual(argmaxRows(exact, model.config.vocabSize));
  });

  it("transformers.js generates slimtune's greedy tokens from the file", async () => {
    const g = await Generator.create(generationScoring(base), tokenizer);
    const ours = await g.generate(PROMPT, { maxNewTokens: N, temperature: 0, eosTokenIds: [] });
    await g.release();
    const tok = await AutoTokenizer.from_pretrained("mixed");
    const lm = await AutoModelForCausalLM.from_pretrained("mixed", { dtype: "q8", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...ours.promptIds, ...ours.ids]);
  });

  it("3-bit codes are stored at 3 bits in the file (widened to 4 in the graph): one bit per weight less than 4-bit", async () => {
    const three = await exportOnnx({ kind: "quantized", model: quantizeModel(model, spec(3, 64)) }, REF_MODEL, path.join(dir, "three"), {});
    const four = await exportOnnx({ kind: "quantized", model: quantizeModel(model, spec(4, 64)) }, REF_MODEL, path.join(dir, "four"), {});
    const weights = [...quantizeModel(model, spec(4, 64)).linears.values()].reduce((s, q) => s + q.outFeatures * q.inFeatures, 0);
    // 0.88 measured: each layer's unpacking adds ~1.6 kB of small constants and nodes.
    const saved = (four.bytes - three.bytes) / (weights / 8);
    expect(saved).toBeGreaterThan(0.8);
    expect(saved).toBeLessThan(1);
  });

  it("an all-2-bit model is q2 (transformers.js' _q2 file) with its codes", async () => {
    const two: LoadedBase = { kind: "quantized", model: quantizeModel(model, spec(2, 32)) };
    const r = await exportOnnx(two, REF_MODEL, path.join(dir, "two"), {});
    expect([r.dtype, r.modelFile, r.changes]).toEqual(["q2", path.join("onnx", "model_q2.onnx"), []]);
  });
});

/** slimtune's exact forward of the quantized model (MatMulNBits at accuracy level 0). */
async function slimtuneLogits(base: LoadedBase, ids: number[]): Promise<Float32Array> {
  if (base.kind !== "quantized") throw new Error("a quantized model");
  const params = new QuantizedParams(new Graph(), base.model, { fused: true });
  const input = params.graph.input("ids", [1, ids.length], "int64");
  const logits = llamaLogits(base.model.config, params, llamaHidden(base.model.config, params, { ids: input }));
  const compiled = await CompiledGraph.compile(params.graph, { logits });
  const out = await compiled.run({ ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
  return out.logits!.data as Float32Array;
}
