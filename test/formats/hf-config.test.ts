// Tests for config.json parsing: the reference model, transformers' defaults, family quirks and clear errors.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseLlamaConfig, readLlamaConfig, toHfConfigJson } from "../../src/formats/hf-config.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";

const dir = tempDir("config");
const file = "config.json";

const minimal = {
  model_type: "llama",
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  vocab_size: 100,
};

describe("readLlamaConfig", () => {
  it("parses ref-llama-5m (GQA 8/4, head_dim 32, tied)", () => {
    const c = readLlamaConfig(refModelDir);
    expect(c).toMatchObject({
      modelType: "llama",
      hiddenSize: 256,
      intermediateSize: 704,
      numLayers: 6,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 32,
      vocabSize: 4096,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      tieWordEmbeddings: true,
      maxPositionEmbeddings: 1024,
      attentionBias: false,
      outputBias: false,
      mlpBias: false,
      bosTokenId: 4095,
      eosTokenId: 4095,
      hiddenAct: "silu",
    });
    expect(c.slidingWindow).toBeUndefined();
    expect(c.raw.initializer_range).toBe(0.02);
  });

  it("a missing folder → E_NOT_FOUND naming the folder", () => {
    const missing = path.join(dir, "no-such-model");
    expectSlimtuneError(() => readLlamaConfig(missing), "E_NOT_FOUND", missing);
  });

  it("a folder without config.json → E_NOT_FOUND naming config.json", () => {
    const empty = path.join(dir, "empty");
    fs.mkdirSync(empty);
    expectSlimtuneError(() => readLlamaConfig(empty), "E_NOT_FOUND", path.join(empty, "config.json"));
  });

  it("invalid JSON → E_CONFIG naming the file", () => {
    const bad = path.join(dir, "bad-json");
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, "config.json"), "{ not json");
    expectSlimtuneError(() => readLlamaConfig(bad), "E_CONFIG", path.join(bad, "config.json"), "not valid JSON");
  });
});

describe("parseLlamaConfig defaults (as transformers' LlamaConfig)", () => {
  it("fills head_dim, num_key_value_heads, rope_theta, rms_norm_eps, tie_word_embeddings", () => {
    const c = parseLlamaConfig(minimal, file);
    expect(c).toMatchObject({
      headDim: 16,
      numKvHeads: 4,
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
      maxPositionEmbeddings: 2048,
      attentionBias: false,
      mlpBias: false,
      hiddenAct: "silu",
    });
    expect(c.bosTokenId).toBeUndefined();
    expect(c.eosTokenId).toBeUndefined();
  });

  it("treats null like absent for nullable fields", () => {
    const c = parseLlamaConfig({ ...minimal, head_dim: null, num_key_value_heads: null, rope_scaling: null }, file);
    expect(c.headDim).toBe(16);
    expect(c.numKvHeads).toBe(4);
  });

  it("qwen2 always has q/k/v biases but no o_proj bias", () => {
    const c = parseLlamaConfig({ ...minimal, model_type: "qwen2", sliding_window: 4096, use_sliding_window: false }, file);
    expect(c).toMatchObject({ attentionBias: true, outputBias: false, maxPositionEmbeddings: 32768 });
    expect(c.slidingWindow).toBeUndefined();
  });

  it("llama attention_bias means biases on q/k/v and o_proj", () => {
    const c = parseLlamaConfig({ ...minimal, attention_bias: true, mlp_bias: true }, file);
    expect(c).toMatchObject({ attentionBias: true, outputBias: true, mlpBias: true });
  });

  it.each([
    [{ sliding_window: 4096 }, 4096],
    [{ sliding_window: null }, undefined],
    [{}, 4096],
  ])("mistral %j records slidingWindow %s", (extra, expected) => {
    expect(parseLlamaConfig({ ...minimal, model_type: "mistral", ...extra }, file).slidingWindow).toBe(expected);
  });

  it("reads eos lists (LLaMA 3) and rope_parameters (transformers v5)", () => {
    const c = parseLlamaConfig(
      { ...minimal, eos_token_id: [7, 8, 9], rope_parameters: { rope_type: "default", rope_theta: 500000 } },
      file,
    );
    expect(c.eosTokenId).toBe(7);
    expect(c.eosTokenIds).toEqual([7, 8, 9]);
    expect(c.ropeTheta).toBe(500000);
  });
});

describe("parseLlamaConfig errors name the field, the value and the fix", () => {
  const { hidden_size: _hidden, ...withoutHidden } = minimal;
  const { model_type: _type, ...withoutType } = minimal;
  it.each<[string, Record<string, unknown>, string[]]>([
    ["unsupported model_type", { ...minimal, model_type: "falcon" }, ['unsupported model_type "falcon" in config.json; slimtune supports the LLaMA family: llama, mistral, qwen2']],
    ["missing model_type", withoutType, ["unsupported model_type (missing)"]],
    ["missing hidden_size", withoutHidden, ['"hidden_size" is missing', "positive integer"]],
    ["string hidden_size", { ...minimal, hidden_size: "64" }, ['"hidden_size" is "64"']],
    ["zero layers", { ...minimal, num_hidden_layers: 0 }, ['"num_hidden_layers" is 0']],
    ["hidden_act gelu", { ...minimal, hidden_act: "gelu" }, ['hidden_act "gelu"', "silu"]],
    ["rope_scaling llama3", { ...minimal, rope_scaling: { rope_type: "llama3", factor: 8 } }, ["rope_scaling", "llama3", "not supported yet"]],
    ["rope_parameters yarn", { ...minimal, rope_parameters: { rope_type: "yarn" } }, ["yarn", "not supported yet"]],
    ["heads not a multiple of kv heads", { ...minimal, num_key_value_heads: 3 }, ["num_attention_heads 4", "num_key_value_heads 3"]],
    ["hidden not divisible by heads", { ...minimal, num_attention_heads: 6, num_key_value_heads: 2 }, ["hidden_size 64", "head_dim"]],
    ["eos_token_id string", { ...minimal, eos_token_id: "</s>" }, ['"eos_token_id" is "</s>"', "token id"]],
  ])("%s → E_CONFIG", (_label, json, mentions) => {
    const err = expectSlimtuneError(() => parseLlamaConfig(json, "/models/x/config.json"), "E_CONFIG", ...mentions);
    expect(err.message).toContain("/models/x/config.json");
  });

  it("accepts rope_scaling {rope_type: default} as plain RoPE", () => {
    expect(parseLlamaConfig({ ...minimal, rope_scaling: { rope_type: "default" } }, file).ropeTheta).toBe(10000);
  });
});

describe("toHfConfigJson", () => {
  it("round-trips the reference config, keeping unknown fields", () => {
    const c = readLlamaConfig(refModelDir);
    const json = toHfConfigJson(c, { torch_dtype: "float32" });
    const original = JSON.parse(fs.readFileSync(path.join(refModelDir, "config.json"), "utf8"));
    expect(json).toEqual(original);
    expect(parseLlamaConfig(json, file)).toEqual(c);
  });

  it("writes changed fields and overrides, and explicit defaults", () => {
    const c = { ...parseLlamaConfig(minimal, file), intermediateSize: 96 };
    const json = toHfConfigJson(c, { torch_dtype: "float16" });
    expect(json).toMatchObject({
      architectures: ["LlamaForCausalLM"],
      intermediate_size: 96,
      head_dim: 16,
      num_key_value_heads: 4,
      rope_theta: 10000,
      torch_dtype: "float16",
    });
  });

  it("updates rope_parameters in place when the source used it", () => {
    const c = parseLlamaConfig({ ...minimal, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }, file);
    const json = toHfConfigJson({ ...c, ropeTheta: 5e5 });
    expect(json.rope_parameters).toEqual({ rope_type: "default", rope_theta: 5e5 });
    expect(json.rope_theta).toBeUndefined();
  });
});
