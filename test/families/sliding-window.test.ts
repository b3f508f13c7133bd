// Sliding-window attention in the families that declare it besides Gemma 3: mistral (every layer),
// phi3 (every layer), qwen2 and qwen3 (use_sliding_window, layers ≥ max_window_layers). Tiny random models
// with a window of 5 and prompts three times as long. A one-layer model's windowed logit at t is
// the logit of the model run on the last `window` tokens alone (RoPE is relative, so the window's
// scores are the truncated run's); with two layers, a token influences exactly the logits up to
// 2·(window − 1) positions later. The full graph, the block graph and the key/value decoder agree;
// the ONNX export (the KV graph) generates slimtune's tokens in transformers.js; llama.cpp, which
// ignores the window of these architectures, agrees up to the window and not after, and the GGUF
// export says so.

import path from "node:path";
import { AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { layerWindow } from "../../src/arch/llama/window.js";
import { Generator } from "../../src/eval/generate.js";
import { generationScoring } from "../../src/export/deploy.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { readLlamaGguf } from "../../src/formats/gguf/llama.js";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { HIDDEN_IN, HIDDEN_OUT, buildBlockGraph, embedRows } from "../../src/models/llama/block.js";
import { llamaLogits } from "../../src/models/llama/graph.js";
import { ATTENTION_MASK, INPUT_IDS, LOGITS, POSITION_IDS, buildKvGraph, pastName, presentName } from "../../src/models/llama/kv-graph.js";
import type { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { IDS, TARGETS, buildLmScoreGraph } from "../../src/models/llama/lm-graphs.js";
import { EXAMPLE_MASK, POSITIONS, buildSftScoreGraph } from "../../src/models/llama/sft-graphs.js";
import { llamaNextProbabilities } from "../helpers/llama-cpp.js";
import { scratchDir } from "../helpers/paths.js";
import { PHI3_TINY_CONFIG, QWEN3_TINY_CONFIG, randomModel, saveRandomModel, slimtuneLogProbs } from "../helpers/tiny-families.js";

const W = 5;
const PROMPT = [12, 900, 33, 4000, 7, 250, 1999, 64, 3, 1024, 77, 3500, 18, 640, 2048, 9];

/** mistralai/Mistral-7B-v0.1's config.json, widths scaled down, window 5. */
const MISTRAL_TINY_CONFIG = {
  architectures: ["MistralForCausalLM"],
  bos_token_id: 4095,
  eos_token_id: 4095,
  hidden_act: "silu",
  hidden_size: 64,
  initializer_range: 0.02,
  intermediate_size: 160,
  max_position_embeddings: 512,
  model_type: "mistral",
  num_attention_heads: 4,
  num_hidden_layers: 2,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: W,
  tie_word_embeddings: false,
  torch_dtype: "float32",
  use_cache: true,
  vocab_size: 4096,
};
/** Qwen2's config (the qwen3 tiny one's widths, qwen2's fields): window on layers ≥ max_window_layers. */
const { head_dim: _h, ...qwenWidths } = QWEN3_TINY_CONFIG;
const QWEN2_TINY_CONFIG = { ...qwenWidths, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", use_sliding_window: true, sliding_window: W, max_window_layers: 1 };
const PHI3_WINDOW_CONFIG = { ...PHI3_TINY_CONFIG, sliding_window: W };

const FAMILIES = [
  ["mistral", MISTRAL_TINY_CONFIG],
  ["phi3", PHI3_WINDOW_CONFIG],
  ["qwen2", { ...QWEN2_TINY_CONFIG, max_window_layers: 0 }],
  ["qwen3", { ...QWEN3_TINY_CONFIG, use_sliding_window: true, sliding_window: W, max_window_layers: 0 }],
] as const;

const worstDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe("sliding-window attention of mistral, phi3, qwen2 and qwen3", () => {
  const dir = scratchDir("sliding-window");

  it("parses which layers have a window, as transformers' configs decide", () => {
    const parse = (c: Record<string, unknown>) => parseLlamaConfig(c, "config.json");
    const windows = (c: Record<string, unknown>) => {
      const config = parse(c);
      return Array.from({ length: config.numLayers }, (_, i) => layerWindow(config, i) ?? null);
    };
    expect(windows(MISTRAL_TINY_CONFIG)).toEqual([W, W]);
    expect(windows({ ...MISTRAL_TINY_CONFIG, sliding_window: null })).toEqual([null, null]);
    expect(windows(PHI3_WINDOW_CONFIG)).toEqual([W, W]);
    expect(windows({ ...PHI3_WINDOW_CONFIG, sliding_window: null })).toEqual([null, null]);
    // qwen2: only with use_sliding_window, only from max_window_layers on (default 28), or as layer_types says.
    expect(windows(QWEN2_TINY_CONFIG)).toEqual([null, W]);
    expect(windows({ ...QWEN2_TINY_CONFIG, use_sliding_window: false })).toEqual([null, null]);
    expect(windows({ ...QWEN2_TINY_CONFIG, max_window_layers: 2 })).toEqual([null, null]);
    expect(windows({ ...QWEN2_TINY_CONFIG, max_window_layers: undefined })).toEqual([null, null]);
    expect(windows({ ...QWEN2_TINY_CONFIG, layer_types: ["sliding_attention", "full_attention"] })).toEqual([W, null]);
    expect(() => parse({ ...QWEN2_TINY_CONFIG, layer_types: ["sliding_attention"] })).toThrow(/layer_types/);
  });

  it.each(FAMILIES)("%s, one layer: the logit at t is the model's on the last window tokens alone", async (_name, json) => {
    const model = randomModel({ ...json, num_hidden_layers: 1 }, 5);
    expect(layerWindow(model.config, 0)).toBe(W);
    const windowed = await slimtuneLogProbs(model, PROMPT);
    let worst = 0;
    for (let t = 0; t < PROMPT.length; t++) {
      const context = PROMPT.slice(Math.max(0, t - W + 1), t + 1);
      const alone = await slimtuneLogProbs(model, context);
      worst = Math.max(worst, worstDiff(windowed[t]!, alone[context.length - 1]!));
    }
    console.log(`${_name}: one layer, max |Δ log p| against the truncated runs ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
    // Not a test that cannot fail: without the window the late positions differ.
    const wide = await slimtuneLogProbs({ ...model, config: { ...model.config, slidingWindow: undefined } } as LlamaModel, PROMPT);
    expect(worstDiff(wide[PROMPT.length - 1]!, windowed[PROMPT.length - 1]!)).toBeGreaterThan(0.05);
  });

  it.each(FAMILIES)("%s, two layers: token s reaches the logits up to s + 2·(window − 1) and no further", async (_name, json) => {
    const model = randomModel(json, 6);
    const s = 2;
    const reach = s + 2 * (W - 1);
    const base = await slimtuneLogProbs(model, PROMPT);
    const changed = await slimtuneLogProbs(model, PROMPT.map((id, i) => (i === s ? 1500 : id)));
    expect(worstDiff(base[reach]!, changed[reach]!)).toBeGreaterThan(1e-3);
    for (let t = reach + 1; t < PROMPT.length; t++) expect(worstDiff(base[t]!, changed[t]!), `position ${t}`).toBeLessThan(1e-5);
  });

  it("qwen2: the layers below max_window_layers attend fully; with every layer below it the model is the unwindowed one", async () => {
    const windowedTop = randomModel(QWEN2_TINY_CONFIG, 7);
    const none = randomModel({ ...QWEN2_TINY_CONFIG, max_window_layers: 2 }, 7);
    const off = randomModel({ ...QWEN2_TINY_CONFIG, use_sliding_window: false }, 7);
    const a = await slimtuneLogProbs(windowedTop, PROMPT);
    const b = await slimtuneLogProbs(none, PROMPT);
    const c = await slimtuneLogProbs(off, PROMPT);
    for (let t = 0; t < PROMPT.length; t++) expect(worstDiff(b[t]!, c[t]!)).toBe(0);
    expect(worstDiff(a[W - 1]!, c[W - 1]!)).toBeLessThan(1e-5);
    expect(worstDiff(a[PROMPT.length - 1]!, c[PROMPT.length - 1]!)).toBeGreaterThan(1e-3);
    // Layer 0 is full: a token changes logits beyond one window's reach through it.
    const changed = await slimtuneLogProbs(windowedTop, PROMPT.map((id, i) => (i === 0 ? 1500 : id)));
    expect(worstDiff(a[PROMPT.length - 1]!, changed[PROMPT.length - 1]!)).toBeGreaterThan(1e-4);
  });

  it.each(FAMILIES)("%s: the block graph (GPTQ, ReALLM) and the key/value decoder compute the full graph's logits", async (_name, json) => {
    const model = randomModel(json, 8);
    const config = model.config;
    const T = PROMPT.length;
    const C = config.hiddenSize;
    const V = config.vocabSize;
    const full = await slimtuneLogProbs(model, PROMPT);
    const params = () => new DenseParams(new E.Graph(), model.weights, new Set());
    // Block by block.
    let x = embedRows(model.weights.get("model.embed_tokens.weight")!, Int32Array.from(PROMPT), config);
    for (let i = 0; i < config.numLayers; i++) {
      const { graph, outputs } = buildBlockGraph(config, i, params(), 1, T);
      x = (await (await E.CompiledGraph.compile(graph, outputs)).run({ [HIDDEN_IN]: { data: x, shape: [T, C] } }))[HIDDEN_OUT]!.data as Float32Array;
    }
    const p = params();
    const hidden = p.graph.input("hidden", [T, C]);
    const logp = E.logSoftmax(llamaLogits(config, p, E.rmsNorm(hidden, p.tensor("model.norm.weight"), config.rmsNormEps)), -1);
    const blockwise = (await (await E.CompiledGraph.compile(p.graph, { logp })).run({ hidden: { data: x, shape: [T, C] } })).logp!.data as Float32Array;
    let worstBlock = 0;
    full.forEach((row, t) => (worstBlock = Math.max(worstBlock, worstDiff(row, blockwise.subarray(t * V, (t + 1) * V)))));
    expect(worstBlock).toBeLessThan(1e-4);
    // Prefill 3 tokens, then one at a time through the cache, well past the window.
    const i64 = (xs: number[]) => BigInt64Array.from(xs, BigInt);
    const range = (n: number) => Array.from({ length: n }, (_, i) => i);
    const prefill = buildKvGraph(config, params(), { batch: 1, seq: "dynamic", past: false, logits: "last" });
    const decode = buildKvGraph(config, params(), { batch: 1, seq: 1, past: true, logits: "last" });
    const pre = await E.CompiledGraph.compile(prefill.graph, prefill.outputs);
    const dec = await E.CompiledGraph.compile(decode.graph, decode.outputs);
    const logSoftmax = (l: Float32Array) => {
      const max = Math.max(...l);
      const z = Math.log(l.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      return l.map((v) => v - z);
    };
    let out = await pre.run({ [INPUT_IDS]: { data: i64(PROMPT.slice(0, 3)), shape: [1, 3] }, [ATTENTION_MASK]: { data: i64([1, 1, 1]), shape: [1, 3] }, [POSITION_IDS]: { data: i64(range(3)), shape: [1, 3] } });
    let worstKv = worstDiff(logSoftmax(out[LOGITS]!.data as Float32Array), full[2]!);
    for (let t = 3; t < T; t++) {
      const feeds: Record<string, E.HostTensor> = {
        [INPUT_IDS]: { data: i64([PROMPT[t]!]), shape: [1, 1] },
        [ATTENTION_MASK]: { data: i64(range(t + 1).map(() => 1)), shape: [1, t + 1] },
        [POSITION_IDS]: { data: i64([t]), shape: [1, 1] },
      };
      decode.kvHeads.forEach((_, i) => {
        feeds[pastName(i, "key")] = out[presentName(i, "key")]!;
        feeds[pastName(i, "value")] = out[presentName(i, "value")]!;
      });
      out = await dec.run(feeds);
      worstKv = Math.max(worstKv, worstDiff(logSoftmax(out[LOGITS]!.data as Float32Array), full[t]!));
    }
    console.log(`${_name}: max |Δ log p| block graph ${worstBlock.toExponential(2)}, KV decoder ${worstKv.toExponential(2)}`);
    expect(worstKv).toBeLessThan(2e-4);
  });

  it("packed rows: each example scores as it does alone, the window counted within the example", async () => {
    const model = randomModel(MISTRAL_TINY_CONFIG, 9);
    const L = 8;
    const a = PROMPT.slice(0, L);
    const b = PROMPT.slice(5, 5 + L);
    const T = 2 * L;
    const mask = new Float32Array(T * T).fill(-1e30);
    for (let i = 0; i < T; i++) for (let j = i < L ? 0 : L; j <= i; j++) mask[i * T + j] = 0;
    const next = (xs: number[]) => [...xs.slice(1), 0];
    const ids = (xs: number[]) => ({ data: BigInt64Array.from(xs, BigInt), shape: [1, xs.length] });
    const run = async (build: (p: DenseParams) => { graph: E.Graph; outputs: E.GraphOutputs }, feeds: Record<string, E.HostTensor>) => {
      const { graph, outputs } = build(new DenseParams(new E.Graph(), model.weights, new Set()));
      return (await (await E.CompiledGraph.compile(graph, outputs)).run(feeds)).nll!.data as Float32Array;
    };
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

  it("mistral's ONNX export keeps the window: transformers.js generates slimtune's tokens past it", async () => {
    const folder = path.join(dir, "tiny-mistral");
    const model = saveRandomModel(MISTRAL_TINY_CONFIG, 10, folder);
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    await exportOnnx({ kind: "float", model }, folder, path.join(dir, "onnx-mistral"), { dtype: "fp32" });
    const N = 12;
    const g = await Generator.create(generationScoring({ kind: "float", model }), await loadTokenizer(folder));
    const ours = (await g.generate(PROMPT, { maxNewTokens: N, temperature: 0, eosTokenIds: [] })).ids;
    await g.release();
    const lm = await AutoModelForCausalLM.from_pretrained("onnx-mistral", { dtype: "fp32", device: "cpu" });
    const input_ids = new Tensor("int64", BigInt64Array.from(PROMPT, BigInt), [1, PROMPT.length]);
    const attention_mask = new Tensor("int64", BigInt64Array.from(PROMPT, () => 1n), [1, PROMPT.length]);
    const out = (await lm.generate({ input_ids, attention_mask, max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...PROMPT, ...ours]);
  });

  it("phi3's GGUF export warns that llama.cpp ignores the window: llama.cpp agrees up to the window and not beyond", async () => {
    // Not "phi3" in the name: llama.cpp applies Phi-3 tokenizer fixes (it looks up "</s>") to any general.name containing it.
    const folder = path.join(dir, "tiny-windowed");
    const model = saveRandomModel(PHI3_WINDOW_CONFIG, 11, folder);
    const file = path.join(dir, "tiny-windowed.gguf");
    const report = exportGguf({ kind: "float", model }, folder, file, { dtype: "f32" });
    expect(report.warnings.join("\n")).toMatch(/sliding window of 5 tokens, which llama\.cpp does not apply/);
    // The key llama.cpp's converter writes for phi3, read back into the same windowed model.
    expect(readGgufHeader(file).metadata.get("phi3.attention.sliding_window")?.value).toBe(W);
    expect(readLlamaGguf(file).config.slidingWindow).toBe(W);
    const theirs = await llamaNextProbabilities(file, PROMPT);
    const ours = await slimtuneLogProbs(model, PROMPT);
    const worstOver = (from: number, to: number) => {
      let worst = 0;
      for (let t = from; t < to; t++) for (const [token, p] of theirs[t]!) if (p >= 1e-4) worst = Math.max(worst, Math.abs(Math.log(p) - ours[t]![token]!));
      return worst;
    };
    console.log(`phi3 vs llama.cpp: max |Δ log p| ${worstOver(0, W).toExponential(2)} within the window, ${worstOver(W, PROMPT.length).toExponential(2)} beyond`);
    expect(worstOver(0, W)).toBeLessThan(2e-3);
    expect(worstOver(W, PROMPT.length)).toBeGreaterThan(0.05);
    // A window as long as the context binds nowhere: no warning.
    const wide = randomModel({ ...PHI3_WINDOW_CONFIG, sliding_window: 512 }, 11);
    expect(exportGguf({ kind: "float", model: wide }, folder, path.join(dir, "wide.gguf"), { dtype: "f32" }).warnings).toEqual([]);
  });
});
