// A ReALLM model exported at its size (issue 17, item 4): each layer as its low-rank factors plus a
// codebook Gather by its codes, constants at their stored widths (codes packed at their width, uint8 scale codes,
// float16 codebook and factors, codes packed at their 5 bits), so the ONNX file is about the folder's size; its logits in
// onnxruntime-node equal slimtune's forward, and transformers.js generates slimtune's tokens.

import fs from "node:fs";
import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import { linearLayers } from "../../src/arch/llama/shapes.js";
import { roundToF16 } from "../../src/core/f16.js";
import { Rng } from "../../src/core/rng.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { generationScoring } from "../../src/export/deploy.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { llamaHidden, llamaLogits } from "../../src/models/llama/graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import type { QuantizedModel, ReallmLinear, ReallmSpec } from "../../src/quant/types.js";
import { exportedLogits, maxAbsDiff } from "../helpers/onnx-logits.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const SPEC: ReallmSpec = { scheme: "reallm", rank: 2, vqDim: 2, codeBits: 5, blockSize: 32, scaleBits: 8, permuted: true, lowRankDtype: "float16" };

/**
 * Every linear layer a ReALLM layer of the weight's row scale with random codes, codebook and factors:
 * k-means on the real weights takes minutes, and the export must compute whatever the layers are.
 */
function syntheticReallm(model: LlamaModel): QuantizedModel {
  const rng = new Rng(7);
  const f16 = (n: number, scale: number) => Float32Array.from({ length: n }, () => roundToF16(rng.normal() * scale));
  const linears = new Map<string, ReallmLinear>();
  const dense = new Map(model.weights);
  for (const { path: p } of linearLayers(model.config)) {
    const weight = model.weights.get(`${p}.weight`)!;
    const [n, k] = weight.shape as [number, number];
    const w = weight.data;
    dense.delete(`${p}.weight`);
    const perm = Int32Array.from({ length: k }, (_, i) => i);
    for (let b = 0; b < k; b += SPEC.blockSize) for (let i = SPEC.blockSize - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1));
      [perm[b + i], perm[b + j]] = [perm[b + j]!, perm[b + i]!];
    }
    const rowScales = Float32Array.from({ length: n }, (_, r) => roundToF16(Math.max(...w.subarray(r * k, (r + 1) * k).map(Math.abs))));
    linears.set(p, {
      kind: "reallm", spec: SPEC, outFeatures: n, inFeatures: k, bias: null, perm,
      l1: f16(n * SPEC.rank, 0.05), l2: f16(SPEC.rank * k, 0.05),
      vqCodes: Uint8Array.from({ length: (n * k) / SPEC.vqDim }, () => Math.floor(rng.uniform() * (1 << SPEC.codeBits))),
      codebook: f16((1 << SPEC.codeBits) * SPEC.vqDim, 0.4),
      scaleCodes: Uint8Array.from({ length: (n * k) / SPEC.blockSize }, () => 128 + Math.floor(rng.uniform() * 128)),
      rowScales,
    });
  }
  return { config: model.config, spec: SPEC, linears, dense, sourceDir: model.sourceDir };
}

describe("export --format onnx writes a ReALLM model at its size", () => {
  const dir = scratchDir("onnx-reallm");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let base: LoadedBase;
  beforeAll(async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
    base = { kind: "quantized", model: syntheticReallm(model) };
  });

  it("no --dtype: nothing changed, the file within 1.1× the folder's bytes, slimtune's logits", async () => {
    const r = await exportOnnx(base, REF_MODEL, path.join(dir, "reallm"), {});
    expect([r.dtype, r.changes]).toEqual(["q4", []]);
    if (base.kind === "quantized") saveQuantizedFolder(path.join(dir, "folder"), base.model);
    const folderBytes = fs.readdirSync(path.join(dir, "folder")).filter((f) => f.endsWith(".safetensors")).reduce((s, f) => s + fs.statSync(path.join(dir, "folder", f)).size, 0);
    // 1.05× measured: the graph, the RoPE tables and float16 codebooks beside the folder's tensors.
    expect(r.bytes / folderBytes).toBeLessThan(1.1);
    const ids = (await tokenizer.encode(PROMPT)).slice(0, 10);
    const ours = await slimtuneLogits(base, ids);
    expect(maxAbsDiff(await exportedLogits(path.join(dir, "reallm"), model.config, ids), ours) / Math.max(...ours.map(Math.abs))).toBeLessThan(1e-5);
  });

  it("transformers.js generates slimtune's greedy tokens", async () => {
    const N = 12;
    const g = await Generator.create(generationScoring(base), tokenizer);
    const ours = await g.generate(PROMPT, { maxNewTokens: N, temperature: 0, eosTokenIds: [] });
    await g.release();
    const tok = await AutoTokenizer.from_pretrained("reallm");
    const lm = await AutoModelForCausalLM.from_pretrained("reallm", { dtype: "q4", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...ours.promptIds, ...ours.ids]);
  });
});

/** slimtune's forward with Q̂ dequantized on the host (the default ReALLM path). */
async function slimtuneLogits(base: LoadedBase, ids: number[]): Promise<Float32Array> {
  if (base.kind !== "quantized") throw new Error("a quantized model");
  const params = new QuantizedParams(new Graph(), base.model);
  const input = params.graph.input("ids", [1, ids.length], "int64");
  const logits = llamaLogits(base.model.config, params, llamaHidden(base.model.config, params, { ids: input }));
  const compiled = await CompiledGraph.compile(params.graph, { logits });
  const out = await compiled.run({ ids: { data: BigInt64Array.from(ids, BigInt), shape: [1, ids.length] } });
  return out.logits!.data as Float32Array;
}
