// Gemma 3 text (model_type "gemma3_text") checked against llama.cpp's own implementation: a tiny
// random model with gemma-3-270m's config shape scaled down (sliding window 6 on five of six layers,
// a 14-token prompt, so the window and both RoPE bases are exercised), exported to GGUF as
// llama.cpp's `gemma3` architecture (its tensor names, norm weights stored as 1 + w, rotate-half
// RoPE), loaded by node-llama-cpp. Its next-token distributions on a fixed prompt equal slimtune's
// within the precision of ggml's GELU and its greedy tokens are slimtune's; transformers.js on the
// ONNX export generates the same tokens; the new op paths' gradients match finite differences.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { exportGgufLora } from "../../src/export/gguf/lora.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { readGgufHeader, readTensor } from "../../src/formats/gguf/reader.js";
import { assertPrunable } from "../../src/arch/llama/groups.js";
import { readLlamaGguf } from "../../src/formats/gguf/llama.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import type { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { geluTanhGate, onePlusNorm } from "../../src/models/llama/gemma3-layer.js";
import { gemma3SequenceAttention } from "../../src/models/llama/gemma3-attention.js";
import { HIDDEN_IN, HIDDEN_OUT, buildBlockGraph, embedRows } from "../../src/models/llama/block.js";
import { llamaLogits } from "../../src/models/llama/graph.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { IDS, TARGETS, buildLmScoreGraph } from "../../src/models/llama/lm-graphs.js";
import { EXAMPLE_MASK, POSITIONS, buildSftScoreGraph } from "../../src/models/llama/sft-graphs.js";
import { gradCheck } from "../engine/gradcheck.js";
import { llamaGreedy, llamaNextProbabilities } from "../helpers/llama-cpp.js";
import { scratchDir } from "../helpers/paths.js";
import { GEMMA3_TINY_CONFIG, greedyIds, logProbGap, randomModel, saveRandomModel, slimtuneLogProbs } from "../helpers/tiny-families.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 16;

describe("gemma3_text: config, llama.cpp and transformers.js agree with slimtune", () => {
  const dir = scratchDir("gemma3");
  const folder = path.join(dir, "tiny-gemma3");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let promptIds: number[];
  const greedy = (base: LoadedBase, adapter?: string) => greedyIds(base, tokenizer, promptIds, N, adapter);

  beforeAll(async () => {
    model = saveRandomModel(GEMMA3_TINY_CONFIG, 3, folder);
    tokenizer = await loadTokenizer(folder);
    promptIds = tokenizer.encodePrompt(PROMPT);
  });

  it("parses Gemma 3's config: four norms and q/k norms per block, the layer pattern, both RoPE bases, Gemma3TextConfig's defaults", () => {
    const c = model.config;
    expect(c).toMatchObject({ modelType: "gemma3_text", headDim: 32, numHeads: 4, numKvHeads: 1, tieWordEmbeddings: true, slidingWindow: 6, ropeTheta: 1e6, hiddenAct: "gelu_pytorch_tanh", attentionBias: false });
    expect(c.gemma3).toEqual({ slidingLayers: [true, true, true, true, true, false], localRopeTheta: 10000, globalRopeFactor: 1, queryPreAttnScalar: 32 });
    for (const norm of ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]) {
      expect(model.weights.get(`model.layers.3.${norm}.weight`)!.shape, norm).toEqual([64]);
    }
    expect(model.weights.get("model.layers.0.self_attn.q_norm.weight")!.shape).toEqual([32]);
    expect(model.weights.get("model.layers.0.self_attn.q_proj.weight")!.shape).toEqual([128, 64]);
    expect(model.weights.has("lm_head.weight")).toBe(false);
    const parse = (over: Record<string, unknown>) => parseLlamaConfig({ ...GEMMA3_TINY_CONFIG, ...over }, "config.json");
    // Without layer_types: every sliding_window_pattern-th layer is global (transformers' rule).
    expect(parse({ layer_types: undefined, _sliding_window_pattern: 3 }).gemma3!.slidingLayers).toEqual([true, true, false, true, true, false]);
    expect(parse({ layer_types: undefined, _sliding_window_pattern: undefined }).gemma3!.slidingLayers).toEqual([true, true, true, true, true, false]);
    // transformers 5 writes the two RoPEs as rope_parameters per layer type; 4B–27B scale the global one linearly.
    const v5 = parse({ rope_theta: undefined, rope_local_base_freq: undefined, rope_parameters: { full_attention: { rope_type: "linear", factor: 8, rope_theta: 5e5 }, sliding_attention: { rope_type: "default", rope_theta: 2e4 } } });
    expect([v5.ropeTheta, v5.gemma3!.localRopeTheta, v5.gemma3!.globalRopeFactor]).toEqual([5e5, 2e4, 8]);
    expect(parse({ rope_scaling: { rope_type: "linear", factor: 8 } }).gemma3!.globalRopeFactor).toBe(8);
    // What slimtune does not implement is refused, not ignored.
    expect(() => parse({ final_logit_softcapping: 30 })).toThrow(/final_logit_softcapping/);
    expect(() => parse({ attn_logit_softcapping: 50 })).toThrow(/attn_logit_softcapping/);
    expect(() => parse({ use_bidirectional_attention: true })).toThrow(/use_bidirectional_attention/);
    expect(() => parse({ hidden_activation: "gelu" })).toThrow(/hidden_activation/);
    expect(() => parse({ rope_scaling: { rope_type: "yarn", factor: 8 } })).toThrow(/yarn/);
    expect(() => parse({ layer_types: ["sliding_attention"] })).toThrow(/layer_types/);
    expect(() => parse({ attention_bias: true })).toThrow(/attention_bias/);
    // Gemma3TextConfig's defaults for the fields a config may leave out.
    const { head_dim: _h, query_pre_attn_scalar: _q, sliding_window: _w, rope_theta: _r, rope_local_base_freq: _l, max_position_embeddings: _m, ...bare } = GEMMA3_TINY_CONFIG;
    expect(parseLlamaConfig(bare, "config.json")).toMatchObject({ headDim: 256, slidingWindow: 4096, ropeTheta: 1e6, maxPositionEmbeddings: 131072, gemma3: { queryPreAttnScalar: 256, localRopeTheta: 10000 } });
  });

  it("f32 GGUF: llama.cpp's next-token distributions equal slimtune's, and its greedy tokens; without the window they would not", async () => {
    const window = GEMMA3_TINY_CONFIG.sliding_window;
    expect(promptIds.length).toBeGreaterThan(2 * window);
    const file = path.join(dir, "tiny-gemma3-f32.gguf");
    const report = exportGguf({ kind: "float", model }, folder, file, { dtype: "f32" });
    expect(report.architecture).toBe("gemma3");
    const theirs = await llamaNextProbabilities(file, promptIds);
    // Largest |Δ log p| over the tokens llama.cpp gives p ≥ 1e-4, at positions [from, to).
    const worstOver = (ours: Float32Array[], from: number, to: number) => logProbGap(theirs, ours, from, to);
    const ours = await slimtuneLogProbs(model, promptIds);
    const all = worstOver(ours, 0, promptIds.length);
    console.log(`gemma3: ${all.compared} log-probabilities over ${promptIds.length} positions, max |Δ log p| ${all.worst.toExponential(2)}`);
    expect(all.compared).toBeGreaterThan(promptIds.length);
    // ggml's CPU GELU reads a float16 table (GGML_GELU_FP16: input and output rounded to float16),
    // which moves log p by a few 1e-3 here; with that rounding emulated the difference was 6e-4.
    expect(all.worst).toBeLessThan(5e-3);
    // The same weights with the window wider than the prompt: equal before the window fills, far off after.
    const unwindowed = { ...model, config: parseLlamaConfig({ ...GEMMA3_TINY_CONFIG, sliding_window: 512 }, "config.json") } as LlamaModel;
    const wide = await slimtuneLogProbs(unwindowed, promptIds);
    expect(worstOver(wide, 0, window).worst).toBeLessThan(5e-3);
    expect(worstOver(wide, window, promptIds.length).worst).toBeGreaterThan(0.1);
    expect(await llamaGreedy(file, promptIds, N)).toEqual(await greedy({ kind: "float", model }));
  });
  it("the block-by-block path of GPTQ and ReALLM (host embedding × √C, one graph per layer, window applied) computes the full graph's log-probabilities", async () => {
    const T = promptIds.length;
    const C = model.config.hiddenSize;
    let x = embedRows(model.weights.get("model.embed_tokens.weight")!, Int32Array.from(promptIds), model.config);
    for (let i = 0; i < model.config.numLayers; i++) {
      const { graph, outputs } = buildBlockGraph(model.config, i, new DenseParams(new E.Graph(), model.weights, new Set()), 1, T);
      const out = await (await E.CompiledGraph.compile(graph, outputs)).run({ [HIDDEN_IN]: { data: x, shape: [T, C] } });
      x = out[HIDDEN_OUT]!.data as Float32Array;
    }
    const p = new DenseParams(new E.Graph(), model.weights, new Set());
    const hidden = p.graph.input("hidden", [T, C]);
    const logits = llamaLogits(model.config, p, onePlusNorm(E.rmsNorm)(hidden, p.tensor("model.norm.weight"), model.config.rmsNormEps));
    const out = await (await E.CompiledGraph.compile(p.graph, { logp: E.logSoftmax(logits, -1) })).run({ hidden: { data: x, shape: [T, C] } });
    const blockwise = out.logp!.data as Float32Array;
    const full = await slimtuneLogProbs(model, promptIds);
    let worst = 0;
    full.forEach((row, t) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - blockwise[t * row.length + j]!)))));
    expect(worst).toBeLessThan(1e-4);
  });

  it("packed rows (instruction tuning): each example of a row scores as it does alone, the window counted within the example", async () => {
    const L = 10; // longer than the window of 6
    const a = promptIds.slice(0, L);
    const b = promptIds.slice(3, 3 + L);
    const T = 2 * L;
    const mask = new Float32Array(T * T).fill(-1e30);
    for (let i = 0; i < T; i++) for (let j = i < L ? 0 : L; j <= i; j++) mask[i * T + j] = 0;
    const next = (xs: number[]) => [...xs.slice(1), 0];
    const run = async (build: (p: DenseParams) => { graph: E.Graph; outputs: E.GraphOutputs }, feeds: Record<string, E.HostTensor>) => {
      const { graph, outputs } = build(new DenseParams(new E.Graph(), model.weights, new Set()));
      return (await (await E.CompiledGraph.compile(graph, outputs)).run(feeds)).nll!.data as Float32Array;
    };
    const ids = (xs: number[]) => ({ data: BigInt64Array.from(xs, BigInt), shape: [1, xs.length] });
    const packed = await run((p) => buildSftScoreGraph(model.config, p, 1, T), {
      [IDS]: ids([...a, ...b]),
      [TARGETS]: { data: BigInt64Array.from([...next(a), ...next(b)], BigInt), shape: [T] },
      [POSITIONS]: { data: BigInt64Array.from([...a.keys(), ...b.keys()], BigInt), shape: [1, T] },
      [EXAMPLE_MASK]: { data: mask, shape: [1, 1, T, T] },
    });
    let worst = 0;
    for (const [k, ex] of [a, b].entries()) {
      const alone = await run((p) => buildLmScoreGraph(model.config, p, 1, L), { [IDS]: ids(ex), [TARGETS]: { data: BigInt64Array.from(next(ex), BigInt), shape: [L] } });
      for (let t = 0; t < L - 1; t++) worst = Math.max(worst, Math.abs(alone[t]! - packed[k * L + t]!));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it("the GGUF holds llama.cpp's gemma3 names, norms as 1 + w, and the window, pattern and local RoPE keys", () => {
    const file = path.join(dir, "tiny-gemma3-f32.gguf");
    const gguf = readGgufHeader(file);
    const meta = (k: string) => gguf.metadata.get(k)?.value;
    expect([meta("gemma3.attention.sliding_window"), meta("gemma3.attention.sliding_window_pattern"), meta("gemma3.rope.freq_base_swa"), meta("gemma3.rope.freq_base")]).toEqual([6, 6, 10000, 1e6]);
    const pairs: Array<[string, string]> = [
      ["model.layers.2.input_layernorm.weight", "blk.2.attn_norm.weight"],
      ["model.layers.2.post_attention_layernorm.weight", "blk.2.post_attention_norm.weight"],
      ["model.layers.2.pre_feedforward_layernorm.weight", "blk.2.ffn_norm.weight"],
      ["model.layers.2.post_feedforward_layernorm.weight", "blk.2.post_ffw_norm.weight"],
      ["model.layers.2.self_attn.k_norm.weight", "blk.2.attn_k_norm.weight"],
      ["model.norm.weight", "output_norm.weight"],
    ];
    for (const [hf, g] of pairs) expect(readTensor(gguf, g), g).toEqual(model.weights.get(hf)!.data.map((w) => w + 1));
    // Q and K rows are not permuted (llama.cpp's gemma3 rotates rotate-half, as transformers).
    expect(readTensor(gguf, "blk.1.attn_q.weight")).toEqual(model.weights.get("model.layers.1.self_attn.q_proj.weight")!.data);
    expect(gguf.tensors.has("output.weight")).toBe(false);
  });

  it("linear RoPE scaling of the global layers (Gemma 3 4B–27B: factor 8) as llama.cpp applies it", async () => {
    const scaledDir = path.join(dir, "tiny-gemma3-linear");
    const scaled = saveRandomModel({ ...GEMMA3_TINY_CONFIG, rope_scaling: { rope_type: "linear", factor: 8 } }, 3, scaledDir);
    const file = path.join(dir, "tiny-gemma3-linear.gguf");
    exportGguf({ kind: "float", model: scaled }, scaledDir, file, { dtype: "f32" });
    expect(readGgufHeader(file).metadata.get("gemma3.rope.scaling.factor")?.value).toBe(8);
    const theirs = await llamaNextProbabilities(file, promptIds);
    const ours = await slimtuneLogProbs(scaled, promptIds);
    const unscaled = await slimtuneLogProbs(model, promptIds); // the same weights (seed 3) without the factor
    let worst = 0;
    let apart = 0;
    theirs.forEach((row, t) => {
      for (const [token, p] of row) {
        if (p < 1e-4) continue;
        worst = Math.max(worst, Math.abs(Math.log(p) - ours[t]![token]!));
        apart = Math.max(apart, Math.abs(Math.log(p) - unscaled[t]![token]!));
      }
    });
    expect(worst).toBeLessThan(5e-3);
    expect(apart).toBeGreaterThan(0.05);
  });

  it("the GGUF reads back as the same gemma3_text model (norms back to w, within float32's rounding of 1 + w)", () => {
    const back = readLlamaGguf(path.join(dir, "tiny-gemma3-f32.gguf"));
    expect(back.config).toMatchObject({ modelType: "gemma3_text", headDim: 32, numKvHeads: 1, slidingWindow: 6, ropeTheta: 1e6, gemma3: model.config.gemma3 });
    for (const [name, w] of model.weights) {
      const got = back.weights.get(name)!.data;
      if (!name.endsWith("norm.weight")) expect(got, name).toEqual(w.data);
      else expect(Math.max(...got.map((x, i) => Math.abs(x - w.data[i]!))), name).toBeLessThanOrEqual(2 ** -24);
    }
  });

  it("a LoRA adapter as a GGUF LoRA (architecture gemma3) gives slimtune's tokens with the adapter", async () => {
    const lora = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 3 });
    let k = 0;
    for (const [name, t] of lora.trainable) if (name.includes("lora_B")) t.data.forEach((_, i) => (t.data[i] = 0.3 * Math.sin(++k * 0.7)));
    const adapterDir = path.join(dir, "lora");
    lora.save(adapterDir);
    const loraFile = path.join(dir, "lora.gguf");
    exportGgufLora({ kind: "float", model }, adapterDir, loraFile, { dtype: "f32" });
    const ours = await greedy({ kind: "float", model }, adapterDir);
    expect(ours).not.toEqual(await greedy({ kind: "float", model }));
    expect(await llamaGreedy(path.join(dir, "tiny-gemma3-f32.gguf"), promptIds, N, loraFile)).toEqual(ours);
  });

  it("what llama.cpp's gemma3 cannot express is refused before writing; structured pruning refuses gemma3", () => {
    const scaled = randomModel({ ...GEMMA3_TINY_CONFIG, query_pre_attn_scalar: 64 }, 4);
    expect(() => exportGguf({ kind: "float", model: scaled }, folder, path.join(dir, "scaled.gguf"), { dtype: "f32" })).toThrow(/query_pre_attn_scalar 64/);
    const irregular = randomModel({ ...GEMMA3_TINY_CONFIG, layer_types: ["full_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"] }, 5);
    expect(() => exportGguf({ kind: "float", model: irregular }, folder, path.join(dir, "irregular.gguf"), { dtype: "f32" })).toThrow(/layer_types/);
    expect(() => assertPrunable(model.config, "structured pruning")).toThrow(/gemma3_text/);
  });

  it("transformers.js runs the ONNX export (position ids from 1, as it feeds gemma3_text) and generates slimtune's tokens", async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    await exportOnnx({ kind: "float", model }, folder, path.join(dir, "onnx-gemma3"), { dtype: "fp32" });
    const tok = await AutoTokenizer.from_pretrained("onnx-gemma3");
    const lm = await AutoModelForCausalLM.from_pretrained("onnx-gemma3", { dtype: "fp32", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...promptIds, ...(await greedy({ kind: "float", model }))]);
  });

  it("gradients of Gemma's ops match finite differences: (1 + w) RMSNorm, tanh-GELU gate, windowed attention with per-layer RoPE", async () => {
    const norm = await gradCheck((_g, [x, w]) => onePlusNorm(E.rmsNorm)(x!, w!, 1e-6), [{ shape: [5, 8] }, { shape: [8], map: (x) => 0.2 * x }]);
    expect(norm.worst).toBeLessThanOrEqual(1);
    const gate = await gradCheck((_g, [a, b]) => geluTanhGate(a!, b!), [{ shape: [4, 6], map: (x) => 2 * x }, { shape: [4, 6] }]);
    expect(gate.worst).toBeLessThanOrEqual(1);
    // Two sequences of 5 tokens, a window of 2 on sliding layer 0, full attention on layer 1.
    const config = parseLlamaConfig({ ...GEMMA3_TINY_CONFIG, num_hidden_layers: 2, layer_types: ["sliding_attention", "full_attention"], hidden_size: 8, head_dim: 4, num_attention_heads: 4, num_key_value_heads: 2, sliding_window: 2 }, "config.json");
    for (const layer of [0, 1]) {
      const r = await gradCheck(
        (g, [q, k, v]) => gemma3SequenceAttention(config, g, { batch: 2, seq: 5 })(layer, q!, k!, v!, { numHeads: 4, numKvHeads: 2, intermediateSize: 1 }),
        [{ shape: [10, 16] }, { shape: [10, 8] }, { shape: [10, 8] }],
      );
      expect(r.worst, `layer ${layer}`).toBeLessThanOrEqual(1);
    }
  });
});
