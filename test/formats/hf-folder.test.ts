// Tests for LLaMA weight loading/saving: the reference model, shape and presence checks, shards, and save → load.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseLlamaConfig, readLlamaConfig } from "../../src/formats/hf-config.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import type { SafetensorsTensor } from "../../src/formats/safetensors.js";
import { llamaParamShapes } from "../../src/arch/llama/shapes.js";
import { loadLlamaWeights, saveLlamaFolder } from "../../src/formats/hf-folder.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";
import type { LlamaConfig } from "../../src/arch/llama/config.js";

const dir = tempDir("weights");

const tinyJson = {
  model_type: "llama",
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 32,
  tie_word_embeddings: false,
};
const tiny = parseLlamaConfig(tinyJson, "tiny/config.json");

function randomWeights(config: LlamaConfig, seed = 1): Map<string, Float32Array> {
  let state = seed;
  const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of llamaParamShapes(config)) {
    weights.set(name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next));
  }
  return weights;
}

// Bit-exact and fast: vitest's deep equality takes seconds on millions of floats.
function expectSameWeights(actual: Map<string, Float32Array>, expected: Map<string, Float32Array>): void {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [name, want] of expected) {
    const got = actual.get(name)!;
    const same = Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength));
    expect(same, name).toBe(true);
  }
}

/** A model folder with config.json and a hand-edited list of tensors. */
function folderWith(name: string, tensors: SafetensorsTensor[], configJson: object = tinyJson): string {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder, { recursive: true });
  fs.writeFileSync(path.join(folder, "config.json"), JSON.stringify(configJson));
  writeSafetensors(path.join(folder, "model.safetensors"), tensors, { format: "pt" });
  return folder;
}

function tensorsOf(config: LlamaConfig, weights: Map<string, Float32Array>): SafetensorsTensor[] {
  const shapes = llamaParamShapes(config);
  return [...weights].map(([name, data]) => ({ name, dtype: "F32", shape: shapes.get(name)!, data }));
}

describe("llamaParamShapes", () => {
  it("lists ref-llama-5m's 56 tensors and 5,475,584 parameters (tied: no lm_head)", () => {
    const shapes = llamaParamShapes(readLlamaConfig(refModelDir));
    expect(shapes.size).toBe(56);
    expect(shapes.has("lm_head.weight")).toBe(false);
    expect(shapes.get("model.layers.0.self_attn.q_proj.weight")).toEqual([256, 256]);
    expect(shapes.get("model.layers.5.self_attn.k_proj.weight")).toEqual([128, 256]);
    expect(shapes.get("model.layers.0.self_attn.o_proj.weight")).toEqual([256, 256]);
    expect(shapes.get("model.layers.0.mlp.down_proj.weight")).toEqual([256, 704]);
    const total = [...shapes.values()].reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
    expect(total).toBe(5_475_584);
  });

  it.each<[string, object, string[], string[]]>([
    ["qwen2: q/k/v biases, no o_proj bias", { model_type: "qwen2" }, ["self_attn.q_proj.bias", "self_attn.v_proj.bias"], ["self_attn.o_proj.bias", "mlp.up_proj.bias"]],
    ["llama attention_bias: q/k/v/o biases", { attention_bias: true }, ["self_attn.k_proj.bias", "self_attn.o_proj.bias"], ["mlp.up_proj.bias"]],
    ["llama mlp_bias", { mlp_bias: true }, ["mlp.gate_proj.bias", "mlp.down_proj.bias"], ["self_attn.q_proj.bias"]],
  ])("%s", (_label, extra, present, absent) => {
    const shapes = llamaParamShapes(parseLlamaConfig({ ...tinyJson, ...extra }, "config.json"));
    for (const suffix of present) expect(shapes.has(`model.layers.1.${suffix}`)).toBe(true);
    for (const suffix of absent) expect(shapes.has(`model.layers.1.${suffix}`)).toBe(false);
    expect(shapes.get("model.layers.0.self_attn.k_proj.bias") ?? [8]).toEqual([8]);
  });
});

describe("loadLlamaWeights", () => {
  it("loads ref-llama-5m with every shape as config.json implies", () => {
    const config = readLlamaConfig(refModelDir);
    const weights = loadLlamaWeights(refModelDir, config);
    const shapes = llamaParamShapes(config);
    expect([...weights.keys()]).toEqual([...shapes.keys()]);
    for (const [name, shape] of shapes) expect(weights.get(name)!.length).toBe(shape.reduce((a, b) => a * b, 1));
    const norm = SafetensorsFile.open(path.join(refModelDir, "model.safetensors")).float32("model.norm.weight");
    expect(weights.get("model.norm.weight")).toEqual(norm);
  });

  it("a wrongly shaped tensor → E_SHAPE naming both shapes", () => {
    const tensors = tensorsOf(tiny, randomWeights(tiny)).map((t) =>
      t.name === "model.layers.1.mlp.up_proj.weight" ? { ...t, shape: [16, 24] } : t,
    );
    const folder = folderWith("wrong-shape", tensors);
    expectSlimtuneError(
      () => loadLlamaWeights(folder, tiny),
      "E_SHAPE",
      'tensor "model.layers.1.mlp.up_proj.weight" has shape [16,24]; config.json implies [24,16]',
      path.join(folder, "model.safetensors"),
    );
  });

  it("a missing tensor → E_SAFETENSORS naming it and the file", () => {
    const tensors = tensorsOf(tiny, randomWeights(tiny)).filter((t) => t.name !== "model.layers.0.input_layernorm.weight");
    const folder = folderWith("missing", tensors);
    expectSlimtuneError(
      () => loadLlamaWeights(folder, tiny),
      "E_SAFETENSORS",
      'missing tensor "model.layers.0.input_layernorm.weight" in model.safetensors',
      path.join(folder, "model.safetensors"),
    );
  });

  it("a missing lm_head on an untied model hints at tie_word_embeddings", () => {
    const folder = folderWith("no-head", tensorsOf(tiny, randomWeights(tiny)).filter((t) => t.name !== "lm_head.weight"));
    expectSlimtuneError(() => loadLlamaWeights(folder, tiny), "E_SAFETENSORS", '"lm_head.weight"', "tie_word_embeddings");
  });

  it("ignores extra tensors (rotary inv_freq, lm_head of a tied model) and converts BF16", () => {
    const tied = parseLlamaConfig({ ...tinyJson, tie_word_embeddings: true }, "config.json");
    const weights = randomWeights(tiny);
    const tensors = tensorsOf(tiny, weights).map((t) =>
      t.name === "model.norm.weight"
        ? { ...t, dtype: "BF16" as const, data: Uint16Array.from([...(t.data as Float32Array)].map((v) => new Uint32Array(Float32Array.of(v).buffer)[0]! >>> 16)) }
        : t,
    );
    tensors.push({ name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: "F32", shape: [2], data: new Float32Array(2) });
    const folder = folderWith("extras", tensors, { ...tinyJson, tie_word_embeddings: true });
    const loaded = loadLlamaWeights(folder, tied);
    expect(loaded.has("lm_head.weight")).toBe(false);
    expect(loaded.has("model.layers.0.self_attn.rotary_emb.inv_freq")).toBe(false);
    const norm = loaded.get("model.norm.weight")!;
    norm.forEach((v, i) => expect(Math.abs(v - weights.get("model.norm.weight")![i]!)).toBeLessThan(1 / 128));
  });

  it("reads sharded checkpoints through model.safetensors.index.json", () => {
    const weights = randomWeights(tiny, 7);
    const tensors = tensorsOf(tiny, weights);
    const folder = path.join(dir, "sharded");
    fs.mkdirSync(folder);
    const halves = [tensors.slice(0, 10), tensors.slice(10)];
    const weightMap: Record<string, string> = {};
    halves.forEach((part, i) => {
      const shard = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(folder, shard), part, { format: "pt" });
      for (const t of part) weightMap[t.name] = shard;
    });
    fs.writeFileSync(path.join(folder, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expectSameWeights(loadLlamaWeights(folder, tiny), weights);

    delete weightMap["model.norm.weight"];
    fs.writeFileSync(path.join(folder, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    expectSlimtuneError(() => loadLlamaWeights(folder, tiny), "E_SAFETENSORS", '"model.norm.weight"', "index.json");
  });

  it("a folder without weights → E_NOT_FOUND", () => {
    const folder = path.join(dir, "no-weights");
    fs.mkdirSync(folder);
    expectSlimtuneError(() => loadLlamaWeights(folder, tiny), "E_NOT_FOUND", folder, "model.safetensors");
  });
});

describe("saveLlamaFolder", () => {
  it("save → load round-trips ref-llama-5m exactly, with config and tokenizer files", () => {
    const config = readLlamaConfig(refModelDir);
    const weights = loadLlamaWeights(refModelDir, config);
    const out = path.join(dir, "saved-ref");
    saveLlamaFolder(out, config, weights, refModelDir);
    expect(fs.readdirSync(out).sort()).toEqual(
      ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
    );
    const reloadedConfig = readLlamaConfig(out);
    expect(reloadedConfig).toEqual(config);
    expectSameWeights(loadLlamaWeights(out, reloadedConfig), weights);
    const st = SafetensorsFile.open(path.join(out, "model.safetensors"));
    expect(st.metadata).toEqual({ format: "pt" });
    expect(st.names()).toEqual([...st.names()].sort());
    expect(fs.readFileSync(path.join(out, "tokenizer.json"))).toEqual(fs.readFileSync(path.join(refModelDir, "tokenizer.json")));
  });

  it("replaces an existing folder, and leaves it untouched when saving fails", () => {
    const out = path.join(dir, "replace");
    saveLlamaFolder(out, tiny, randomWeights(tiny, 1));
    fs.writeFileSync(path.join(out, "stale.txt"), "old");
    const second = randomWeights(tiny, 2);
    saveLlamaFolder(out, tiny, second);
    expect(fs.existsSync(path.join(out, "stale.txt"))).toBe(false);
    expectSameWeights(loadLlamaWeights(out, tiny), second);

    const bad = randomWeights(tiny, 3);
    bad.set("model.norm.weight", new Float32Array(3));
    expectSlimtuneError(() => saveLlamaFolder(out, tiny, bad), "E_SHAPE", '"model.norm.weight"');
    expectSameWeights(loadLlamaWeights(out, tiny), second);
    expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp-") || f.includes(".old-"))).toEqual([]);
  });

  it("rejects weights that are not parameters of the model", () => {
    const weights = randomWeights(tiny);
    weights.set("model.layers.9.mlp.up_proj.weight", new Float32Array(1));
    expectSlimtuneError(() => saveLlamaFolder(path.join(dir, "extra"), tiny, weights), "E_ARG", '"model.layers.9.mlp.up_proj.weight"');
  });
});
