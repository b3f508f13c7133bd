// Phi-3 (model_type "phi3") checked against llama.cpp's own implementation: a tiny random model
// with Phi-3-mini-4k's config shape scaled down, its q/k/v and gate/up kept fused (qkv_proj,
// gate_up_proj, transformers' names), exported to GGUF as llama.cpp's `phi3` architecture (attn_qkv,
// ffn_up of gate then up rows, no Q/K permutation: rotate-half RoPE), loaded by node-llama-cpp.
// Next-token distributions equal slimtune's within float32 tolerance and greedy tokens equal;
// transformers.js on the ONNX export generates the same tokens; the fused path's gradients match
// finite differences.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { exportGgufLora } from "../../src/export/gguf/lora.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import type { LlamaModel } from "../../src/models/llama/model.js";
import { removeStructure } from "../../src/prune/surgery.js";
import type { LoadedBase } from "../../src/models/load.js";
import { gradCheck } from "../engine/gradcheck.js";
import { llamaGreedy, llamaNextProbabilities } from "../helpers/llama-cpp.js";
import { scratchDir } from "../helpers/paths.js";
import { PHI3_TINY_CONFIG, greedyIds, logProbGap, saveRandomModel, slimtuneLogProbs } from "../helpers/tiny-families.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 16;

describe("phi3: config, llama.cpp and transformers.js agree with slimtune", () => {
  const dir = scratchDir("phi3");
  // Not "phi3": llama.cpp applies Phi-3 tokenizer fixes (it looks up "</s>") to any general.name containing it.
  const folder = path.join(dir, "tiny-p3");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let promptIds: number[];
  const greedy = (base: LoadedBase, adapter?: string) => greedyIds(base, tokenizer, promptIds, N, adapter);

  beforeAll(async () => {
    model = saveRandomModel(PHI3_TINY_CONFIG, 3, folder);
    tokenizer = await loadTokenizer(folder);
    promptIds = tokenizer.encodePrompt(PROMPT);
  });

  it("parses Phi-3's config: fused qkv_proj and gate_up_proj, no biases; partial rotary and LongRoPE refused", () => {
    expect(model.config).toMatchObject({ modelType: "phi3", headDim: 24, numHeads: 4, numKvHeads: 4, fusedProjections: true, attentionBias: false, tieWordEmbeddings: false });
    expect(model.weights.get("model.layers.0.self_attn.qkv_proj.weight")!.shape).toEqual([3 * 96, 96]);
    expect(model.weights.get("model.layers.1.mlp.gate_up_proj.weight")!.shape).toEqual([2 * 256, 96]);
    expect(model.weights.has("model.layers.0.self_attn.q_proj.weight")).toBe(false);
    expect(() => parseLlamaConfig({ ...PHI3_TINY_CONFIG, partial_rotary_factor: 0.75 }, "config.json")).toThrow(/partial_rotary_factor/);
    const longrope = { type: "longrope", short_factor: [1], long_factor: [1] };
    expect(() => parseLlamaConfig({ ...PHI3_TINY_CONFIG, rope_scaling: longrope }, "config.json")).toThrow(/not supported yet/);
  });

  it("LoRA targets name the split layers or the fused ones; pruning is refused", async () => {
    const lora = loraForDenseModel(model, { rank: 2, alpha: 4, seed: 1, targetModules: ["q_proj", "v_proj", "up_proj"] });
    expect(lora.adapterConfig.targetModules).toEqual(["qkv_proj", "gate_up_proj"]);
    expect(() => removeStructure(model, [])).toThrow(/fused/);
  });

  it("f32 GGUF: llama.cpp's next-token distributions equal slimtune's, and its greedy tokens", async () => {
    const file = path.join(dir, "tiny-phi3-f32.gguf");
    const report = exportGguf({ kind: "float", model }, folder, file, { dtype: "f32" });
    expect(report.architecture).toBe("phi3");
    const ours = await slimtuneLogProbs(model, promptIds);
    const theirs = await llamaNextProbabilities(file, promptIds);
    const { worst, compared } = logProbGap(theirs, ours);
    console.log(`phi3: ${compared} log-probabilities over ${promptIds.length} positions, max |Δ log p| ${worst.toExponential(2)}`);
    expect(compared).toBeGreaterThan(promptIds.length);
    expect(worst).toBeLessThan(1e-4);
    expect(await llamaGreedy(file, promptIds, N)).toEqual(await greedy({ kind: "float", model }));
  });

  it("a LoRA adapter on the fused layers as a GGUF LoRA (architecture phi3) gives slimtune's tokens with the adapter", async () => {
    const lora = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 3 });
    let k = 0;
    for (const [name, t] of lora.trainable) if (name.includes("lora_B")) t.data.forEach((_, i) => (t.data[i] = 0.3 * Math.sin(++k * 0.7)));
    const adapterDir = path.join(dir, "lora");
    lora.save(adapterDir);
    const loraFile = path.join(dir, "lora.gguf");
    exportGgufLora({ kind: "float", model }, adapterDir, loraFile, { dtype: "f32" });
    const ours = await greedy({ kind: "float", model }, adapterDir);
    expect(ours).not.toEqual(await greedy({ kind: "float", model }));
    expect(await llamaGreedy(path.join(dir, "tiny-phi3-f32.gguf"), promptIds, N, loraFile)).toEqual(ours);
  });

  it("transformers.js runs the ONNX export and generates slimtune's tokens", async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    await exportOnnx({ kind: "float", model }, folder, path.join(dir, "onnx-phi3"), { dtype: "fp32" });
    const tok = await AutoTokenizer.from_pretrained("onnx-phi3");
    const lm = await AutoModelForCausalLM.from_pretrained("onnx-phi3", { dtype: "fp32", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...promptIds, ...(await greedy({ kind: "float", model }))]);
  });

  it("gradients through the fused layers (slices of qkv_proj and gate_up_proj) match finite differences", async () => {
    const r = await gradCheck(
      (g, [x, w, wgu]) => {
        const { cos, sin } = E.ropeTables(3, 4, 10000);
        const rot = { cos: g.constant(Float64Array.from(cos), [3, 4], "float64"), sin: g.constant(Float64Array.from(sin), [3, 4], "float64") };
        const qkv = E.gemm(x!, w!, { transB: true }); // (6, 3·8)
        const att = E.causalAttention(E.slice(qkv, 1, 0, 8), E.slice(qkv, 1, 8, 16), E.slice(qkv, 1, 16, 24), { batch: 2, seq: 3, heads: 2, kvHeads: 2, headDim: 4 }, rot);
        const gu = E.gemm(att, wgu!, { transB: true }); // (6, 2·5)
        return E.siluGate(E.slice(gu, 1, 0, 5), E.slice(gu, 1, 5, 10));
      },
      [{ shape: [6, 8] }, { shape: [24, 8] }, { shape: [10, 8] }],
    );
    expect(r.worst).toBeLessThanOrEqual(1);
  });
});
