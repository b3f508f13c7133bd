// The generation graph with ORT's fused kernels (GroupQueryAttention, SkipSimplifiedLayerNormalization)
// against the portable KV graph on the same weights: the prefill's logits and every decode step's
// agree to the kv-graph test's tolerance and greedy decoding picks the same tokens, on ref-llama-5m,
// tiny-qwen2-variant (q/k/v biases, untied head, θ 1e6), tiny-llama3-rope (Llama 3 frequency
// scaling), a pruned model with a layer without attention and one without an MLP, and Qwen3's
// q/k norms; families the kernels cannot express keep the portable graph.

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import type { LlamaConfig } from "../../src/arch/llama/config.js";
import type { ParamSource } from "../../src/arch/params.js";
import { argmax } from "../../src/eval/sampling.js";
import { LOGITS, buildKvGraph } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { fusedDecoderFits } from "../../src/models/parts/fused-decoder.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import { withQuantizedHead } from "../../src/eval/head-tables.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { emptyPast, kvStepFeeds, pastFromPresent } from "../helpers/kv-step.js";
import { REF_MODEL, SHARED } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const PROMPT = [1, 417, 29, 3051, 88, 12, 940, 7];
const STEPS = 6;

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Greedy decoding through one session: the prefill's logits, then each step's; and the tokens picked. */
async function greedy(config: LlamaConfig, params: () => ParamSource, fused: boolean): Promise<{ logits: Float32Array[]; ids: number[]; nodes: number; reshapes: number }> {
  const kv = buildKvGraph(config, params(), { batch: 1, seq: "dynamic", past: true, logits: "last", fused });
  expect(kv.fused).toBe(fused);
  const step = await CompiledGraph.compile(kv.graph, kv.outputs);
  let out = await step.run({ ...kvStepFeeds(PROMPT, 0), ...emptyPast(kv.kvHeads, config.headDim) });
  const logits = [out[LOGITS]!.data as Float32Array];
  const ids: number[] = [];
  for (let s = 0; s < STEPS; s++) {
    const id = argmax(logits.at(-1)!);
    ids.push(id);
    out = await step.run({ ...kvStepFeeds([id], PROMPT.length + s), ...pastFromPresent(out, kv.kvHeads.length) });
    logits.push(out[LOGITS]!.data as Float32Array);
  }
  await step.release();
  return { logits, ids, nodes: kv.graph.nodes.length, reshapes: kv.graph.nodes.filter((n) => n.op.type === "Reshape").length };
}

async function expectSameDecoding(config: LlamaConfig, params: () => ParamSource): Promise<{ reshapes: number }> {
  expect(fusedDecoderFits(config)).toBe(true);
  const portable = await greedy(config, params, false);
  const fused = await greedy(config, params, true);
  expect(fused.logits).toHaveLength(STEPS + 1);
  fused.logits.forEach((l, s) => expect(maxDiff(l, portable.logits[s]!), `step ${s}`).toBeLessThan(2e-4));
  expect(fused.ids).toEqual(portable.ids);
  expect(fused.nodes).toBeLessThan(portable.nodes * 0.6);
  return { reshapes: fused.reshapes };
}

const dense = (model: LlamaModel) => () => new DenseParams(new Graph(), model.weights, new Set());

describe("the fused generation graph decodes as the portable one", () => {
  let ref: LlamaModel;
  beforeAll(() => {
    ref = LlamaModel.load(REF_MODEL);
  });

  it("ref-llama-5m", async () => {
    const { reshapes } = await expectSameDecoding(ref.config, dense(ref));
    expect(reshapes).toBeGreaterThanOrEqual(4 * ref.config.numLayers); // float Gemms take [B·T, C]: q, k, v in, the output out
  });

  it("ref-llama-5m at 4 bits (MatMulNBits layers, an 8-bit table): the stream stays [B, T, C]", async () => {
    const { base } = withQuantizedHead({ kind: "quantized", model: quantizeModel(ref, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false }) }, 8);
    if (base.kind !== "quantized") throw new Error("expected a quantized model");
    const qm = base.model;
    const { reshapes } = await expectSameDecoding(ref.config, () => new QuantizedParams(new Graph(), qm, { fused: true, tables: qm.tables! }));
    expect(reshapes).toBeLessThanOrEqual(4); // the table's rows, the hidden states to [B·T, C] and back, the last position's
  });

  for (const fixture of ["tiny-qwen2-variant", "tiny-llama3-rope"]) {
    it(fixture, async () => {
      const model = LlamaModel.load(path.join(SHARED, "models", fixture));
      await expectSameDecoding(model.config, dense(model));
    });
  }

  it("a pruned model (a layer without attention, one without an MLP, uneven widths)", async () => {
    const pruned = prunedRefModel();
    await expectSameDecoding(pruned.config, dense(pruned));
  });

  it("Qwen3's per-head q/k norms", async () => {
    const weights = new Map(ref.weights);
    const D = ref.config.headDim;
    for (let i = 0; i < ref.config.numLayers; i++) {
      for (const which of ["q_norm", "k_norm"]) weights.set(`model.layers.${i}.self_attn.${which}.weight`, { data: Float32Array.from({ length: D }, (_, j) => 0.6 + (((i + 1) * (j + 3)) % 7) / 10), shape: [D] });
    }
    const config = { ...ref.config, qkNorm: true };
    await expectSameDecoding(config, () => new DenseParams(new Graph(), weights, new Set()));
  });

  it("keeps the portable graph where the kernels do not fit", () => {
    const c = ref.config;
    expect(fusedDecoderFits({ ...c, fusedProjections: true })).toBe(false);
    expect(fusedDecoderFits({ ...c, headDim: 40 })).toBe(false);
    expect(fusedDecoderFits({ ...c, slidingWindow: 16 })).toBe(false);
    expect(fusedDecoderFits({ ...c, slidingWindow: c.maxPositionEmbeddings })).toBe(true); // never hides a key
    expect(fusedDecoderFits({ ...c, modelType: "gpt2" })).toBe(false);
    // An export (symbolic batch) or a graph without a past never takes the fused kernels.
    const p = () => new DenseParams(new Graph(), ref.weights, new Set());
    expect(buildKvGraph(c, p(), { batch: "dynamic", seq: "dynamic", past: true, logits: "all", fused: true }).fused).toBe(false);
    expect(buildKvGraph(c, p(), { batch: 1, seq: "dynamic", past: false, logits: "last", fused: true }).fused).toBe(false);
  });
});
