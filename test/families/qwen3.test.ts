// Qwen3 (model_type "qwen3") checked against llama.cpp's own implementation: a tiny random model
// with Qwen3-0.6B's config shape scaled down, exported to GGUF as llama.cpp's `qwen3` architecture
// (its tensor names, no Q/K permutation: llama.cpp's qwen3 uses rotate-half RoPE), loaded by
// node-llama-cpp. Its next-token distributions on a fixed prompt equal slimtune's within float32
// tolerance and its greedy tokens are slimtune's; transformers.js on the ONNX export generates the
// same tokens; the q/k norm path's gradients match finite differences.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { exportGgufLora } from "../../src/export/gguf/lora.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { readLlamaGguf } from "../../src/formats/gguf/llama.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import type { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { gradCheck } from "../engine/gradcheck.js";
import { llamaGreedy, llamaNextProbabilities } from "../helpers/llama-cpp.js";
import { scratchDir } from "../helpers/paths.js";
import { QWEN3_TINY_CONFIG, greedyIds, logProbGap, randomModel, saveRandomModel, slimtuneLogProbs } from "../helpers/tiny-families.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 16;

describe("qwen3: config, llama.cpp and transformers.js agree with slimtune", () => {
  const dir = scratchDir("qwen3");
  const folder = path.join(dir, "tiny-qwen3");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let promptIds: number[];
  const greedy = (base: LoadedBase, adapter?: string) => greedyIds(base, tokenizer, promptIds, N, adapter);

  beforeAll(async () => {
    model = saveRandomModel(QWEN3_TINY_CONFIG, 3, folder);
    tokenizer = await loadTokenizer(folder);
    promptIds = tokenizer.encodePrompt(PROMPT);
  });

  it("parses Qwen3's config: explicit head_dim, q/k norms, no biases; attention_bias puts one on o_proj too", () => {
    expect(model.config).toMatchObject({ modelType: "qwen3", headDim: 32, numHeads: 4, hiddenSize: 64, qkNorm: true, attentionBias: false, outputBias: false, mlpBias: false });
    expect(model.weights.get("model.layers.0.self_attn.q_norm.weight")!.shape).toEqual([32]);
    expect(model.weights.get("model.layers.1.self_attn.k_norm.weight")!.shape).toEqual([32]);
    expect(model.weights.get("model.layers.0.self_attn.q_proj.weight")!.shape).toEqual([128, 64]);
    expect(model.weights.has("model.layers.0.self_attn.q_proj.bias")).toBe(false);
    const biased = parseLlamaConfig({ ...QWEN3_TINY_CONFIG, attention_bias: true }, "config.json");
    expect(biased).toMatchObject({ attentionBias: true, outputBias: true });
    // use_sliding_window as Qwen3Config reads it: a window on the layers ≥ max_window_layers (test/families/sliding-window.test.ts computes it).
    const windowed = parseLlamaConfig({ ...QWEN3_TINY_CONFIG, use_sliding_window: true, sliding_window: 8, max_window_layers: 1 }, "config.json");
    expect([windowed.slidingWindow, windowed.windowedLayers]).toEqual([8, [false, true]]);
    expect(parseLlamaConfig({ ...QWEN3_TINY_CONFIG, use_sliding_window: true }, "config.json").slidingWindow).toBeUndefined(); // sliding_window null
    expect(() => parseLlamaConfig({ ...QWEN3_TINY_CONFIG, layer_types: ["full_attention", "sliding_attention"] }, "config.json")).toThrow(/use_sliding_window/);
    expect(parseLlamaConfig({ ...QWEN3_TINY_CONFIG, layer_types: ["full_attention", "full_attention"] }, "config.json").numLayers).toBe(2);
    // Qwen3Config's defaults: head_dim 128 (not hidden_size / heads), untied, 32768 positions, eps 1e-6.
    const { head_dim: _h, tie_word_embeddings: _t, max_position_embeddings: _m, rms_norm_eps: _e, ...bare } = QWEN3_TINY_CONFIG;
    expect(parseLlamaConfig(bare, "config.json")).toMatchObject({ headDim: 128, tieWordEmbeddings: false, maxPositionEmbeddings: 32768, rmsNormEps: 1e-6 });
  });

  it("f32 GGUF: llama.cpp's next-token distributions equal slimtune's, and its greedy tokens", async () => {
    const file = path.join(dir, "tiny-qwen3-f32.gguf");
    const report = exportGguf({ kind: "float", model }, folder, file, { dtype: "f32" });
    expect(report.architecture).toBe("qwen3");
    const ours = await slimtuneLogProbs(model, promptIds);
    const theirs = await llamaNextProbabilities(file, promptIds);
    const { worst, compared } = logProbGap(theirs, ours);
    console.log(`qwen3: ${compared} log-probabilities over ${promptIds.length} positions, max |Δ log p| ${worst.toExponential(2)}`);
    expect(compared).toBeGreaterThan(promptIds.length);
    expect(worst).toBeLessThan(1e-4);
    expect(await llamaGreedy(file, promptIds, N)).toEqual(await greedy({ kind: "float", model }));
  });

  it("a LoRA adapter as a GGUF LoRA (architecture qwen3, B rows not permuted) gives slimtune's tokens with the adapter", async () => {
    const lora = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 3 });
    let k = 0;
    for (const [name, t] of lora.trainable) if (name.includes("lora_B")) t.data.forEach((_, i) => (t.data[i] = 0.3 * Math.sin(++k * 0.7)));
    const adapterDir = path.join(dir, "lora");
    lora.save(adapterDir);
    const loraFile = path.join(dir, "lora.gguf");
    exportGgufLora({ kind: "float", model }, adapterDir, loraFile, { dtype: "f32" });
    const ours = await greedy({ kind: "float", model }, adapterDir);
    expect(ours).not.toEqual(await greedy({ kind: "float", model }));
    expect(await llamaGreedy(path.join(dir, "tiny-qwen3-f32.gguf"), promptIds, N, loraFile)).toEqual(ours);
  });

  it("what llama.cpp's qwen3 cannot load is refused before writing: attention biases, per-layer widths", () => {
    const biased = randomModel({ ...QWEN3_TINY_CONFIG, attention_bias: true }, 4);
    expect(() => exportGguf({ kind: "float", model: biased }, folder, path.join(dir, "biased.gguf"), { dtype: "f32" })).toThrow(/attention_bias/);
    const shapes = [{ num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 192 }, { num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 96 }];
    const pruned = randomModel({ ...QWEN3_TINY_CONFIG, slimtune_layer_shapes: shapes }, 5);
    expect(() => exportGguf({ kind: "float", model: pruned }, folder, path.join(dir, "pruned.gguf"), { dtype: "f32" })).toThrow(/pruned qwen3/);
  });

  it("the GGUF reads back as the same qwen3 model", () => {
    const file = path.join(dir, "tiny-qwen3-f32.gguf");
    const back = readLlamaGguf(file);
    expect(back.config).toMatchObject({ modelType: "qwen3", qkNorm: true, headDim: 32, numHeads: 4, numKvHeads: 2 });
    for (const [name, w] of model.weights) expect(back.weights.get(name)!.data, name).toEqual(w.data);
  });

  it("transformers.js runs the ONNX export and generates slimtune's tokens", async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    await exportOnnx({ kind: "float", model }, folder, path.join(dir, "onnx-qwen3"), { dtype: "fp32" });
    const tok = await AutoTokenizer.from_pretrained("onnx-qwen3");
    const lm = await AutoModelForCausalLM.from_pretrained("onnx-qwen3", { dtype: "fp32", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...promptIds, ...(await greedy({ kind: "float", model }))]);
  });

  it("gradients of the q/k norm path (per-head RMSNorm, then RoPE and attention) match finite differences", async () => {
    const config = parseLlamaConfig({ ...QWEN3_TINY_CONFIG, hidden_size: 8, head_dim: 4, num_attention_heads: 4, num_key_value_heads: 2 }, "config.json");
    // One attention sub-block of the graph: q, k, v projections given, q/k norms and RoPE from the config.
    const r = await gradCheck(
      (g, [q, k, v, qw, kw]) => {
        const norm = (x: E.Value, w: E.Value, heads: number) => E.reshape(E.rmsNorm(E.reshape(x, [6, heads, 4]), w, config.rmsNormEps), [6, heads * 4]);
        const { cos, sin } = E.ropeTables(3, 4, config.ropeTheta);
        const rot = { cos: g.constant(Float64Array.from(cos), [3, 4], "float64"), sin: g.constant(Float64Array.from(sin), [3, 4], "float64") };
        return E.causalAttention(norm(q!, qw!, 4), norm(k!, kw!, 2), v!, { batch: 2, seq: 3, heads: 4, kvHeads: 2, headDim: 4 }, rot);
      },
      [{ shape: [6, 16] }, { shape: [6, 8] }, { shape: [6, 8] }, { shape: [4], map: (x) => 1 + 0.2 * x }, { shape: [4], map: (x) => 1 + 0.2 * x }],
    );
    expect(r.worst).toBeLessThanOrEqual(1);
  });
});
