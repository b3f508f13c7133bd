// PEFT LoRA adapter folders: the config JSON key by key (formats.md §2.2), tensor keys and shapes
// (§2.3), the safetensors metadata, and typed errors for folders slimtune must refuse.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseLlamaConfig, readLlamaConfig } from "../../src/formats/hf-config.js";
import {
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  type PeftLoraConfig,
  type PeftTensor,
  loadPeftAdapter,
  loraKeys,
  loraScale,
  parseLoraKey,
  peftConfigJson,
  savePeftAdapter,
} from "../../src/formats/peft.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";

const root = tempDir("peft");
let n = 0;
const fresh = (tag: string) => path.join(root, `${tag}-${n++}`);

// Two layers of ref-llama-5m's q_proj [256, 256] and down_proj [256, 704], rank 4.
const r = 4;
const modules: Array<[string, number, number]> = [
  ["model.layers.0.self_attn.q_proj", 256, 256],
  ["model.layers.0.mlp.down_proj", 256, 704],
  ["model.layers.1.self_attn.q_proj", 256, 256],
  ["model.layers.1.mlp.down_proj", 256, 704],
];

function ramp(count: number, seed: number): Float32Array {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 1000 + i) * 0.1);
}

function sampleTensors(): Map<string, PeftTensor> {
  const t = new Map<string, PeftTensor>();
  modules.forEach(([p, N, K], i) => {
    const { a, b } = loraKeys(p);
    t.set(a, { data: ramp(r * K, 2 * i), shape: [r, K] });
    t.set(b, { data: ramp(N * r, 2 * i + 1), shape: [N, r] });
  });
  return t;
}

const sampleConfig: PeftLoraConfig = {
  r,
  loraAlpha: 16,
  targetModules: ["q_proj", "down_proj"],
  baseModelNameOrPath: "/models/ref-llama-5m",
  useRslora: false,
};

/** The whole of adapter_config.json as formats.md §2.2 lists it (PEFT 0.17's LoraConfig fields). */
const expectedJson = {
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: "/models/ref-llama-5m",
  bias: "none",
  corda_config: null,
  eva_config: null,
  exclude_modules: null,
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 16,
  lora_bias: false,
  lora_dropout: 0,
  megatron_config: null,
  megatron_core: "megatron.core",
  modules_to_save: null,
  peft_type: "LORA",
  qalora_group_size: 16,
  r: 4,
  rank_pattern: {},
  revision: null,
  target_modules: ["down_proj", "q_proj"],
  target_parameters: null,
  task_type: "CAUSAL_LM",
  trainable_token_indices: null,
  use_dora: false,
  use_qalora: false,
  use_rslora: false,
};

function savedSample(): string {
  const dir = fresh("ok");
  savePeftAdapter(dir, sampleConfig, sampleTensors());
  return dir;
}

/** A saved sample whose adapter_config.json is edited by `edit`. */
function withConfig(edit: (json: Record<string, unknown>) => void): string {
  const dir = savedSample();
  const file = path.join(dir, PEFT_CONFIG_FILE);
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  return dir;
}

/** A saved sample whose tensors are replaced by `tensors`. */
function withTensors(tensors: Array<{ name: string; shape: number[] }>): string {
  const dir = savedSample();
  writeSafetensors(
    path.join(dir, PEFT_WEIGHTS_FILE),
    tensors.map(({ name, shape }) => ({ name, dtype: "F32" as const, shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)) })),
    { format: "pt" },
  );
  return dir;
}

describe("PEFT adapter round trip", () => {
  it("writes adapter_config.json with every key, sorted, indent 2, as PEFT's save_pretrained", () => {
    const dir = savedSample();
    expect(fs.readdirSync(dir).sort()).toEqual([PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE]);
    const text = fs.readFileSync(path.join(dir, PEFT_CONFIG_FILE), "utf8");
    expect(JSON.parse(text)).toStrictEqual(expectedJson);
    // json.dumps(indent=2, sort_keys=True): same bytes as this, no trailing newline.
    expect(text).toBe(JSON.stringify(expectedJson, null, 2).replace('"lora_dropout": 0,', '"lora_dropout": 0.0,'));
    const keys = Object.keys(JSON.parse(text) as object);
    expect(keys).toEqual([...keys].sort());
    expect(text).toContain('\n  "lora_dropout": 0.0,\n');
    expect(text).toContain('\n  "target_modules": [\n    "down_proj",\n    "q_proj"\n  ],\n');
  });

  it("writes adapter_model.safetensors with format pt metadata, F32, [r, K] / [N, r] under PEFT keys", () => {
    const dir = savedSample();
    const file = SafetensorsFile.open(path.join(dir, PEFT_WEIGHTS_FILE));
    expect(file.metadata).toEqual({ format: "pt" });
    expect(file.names().sort()).toEqual([
      "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight",
      "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.1.mlp.down_proj.lora_A.weight",
      "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
    ]);
    const e = (k: string) => file.entries.get(k)!;
    expect(e("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")).toMatchObject({ dtype: "F32", shape: [4, 704] });
    expect(e("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")).toMatchObject({ dtype: "F32", shape: [256, 4] });
  });

  it("loads back the same config, keys, shapes and values (checked against the model config)", () => {
    const dir = savedSample();
    const adapter = loadPeftAdapter(dir, { config: readLlamaConfig(refModelDir) });
    expect(adapter.config).toEqual({ ...sampleConfig, targetModules: ["down_proj", "q_proj"], revision: null });
    expect(adapter.raw).toStrictEqual(expectedJson);
    const original = sampleTensors();
    expect([...adapter.tensors.keys()]).toEqual([...original.keys()].sort());
    for (const [k, t] of original) {
      expect(adapter.tensors.get(k)!.shape, k).toEqual(t.shape);
      expect(adapter.tensors.get(k)!.data, k).toEqual(t.data);
    }
  });

  it("writes rsLoRA, a regex target and a null base as given", () => {
    const dir = fresh("rs");
    const config: PeftLoraConfig = { ...sampleConfig, useRslora: true, targetModules: ".*\\.(q_proj|down_proj)", baseModelNameOrPath: null };
    savePeftAdapter(dir, config, sampleTensors());
    const json = JSON.parse(fs.readFileSync(path.join(dir, PEFT_CONFIG_FILE), "utf8")) as Record<string, unknown>;
    expect(json).toMatchObject({ use_rslora: true, target_modules: ".*\\.(q_proj|down_proj)", base_model_name_or_path: null });
    const back = loadPeftAdapter(dir).config;
    expect(back.targetModules).toBe(".*\\.(q_proj|down_proj)");
    expect(loraScale(back)).toBeCloseTo(16 / 2, 12);
    expect(loraScale(sampleConfig)).toBe(4);
  });

  it("replaces an existing folder atomically", () => {
    const dir = savedSample();
    fs.writeFileSync(path.join(dir, "stale.txt"), "old");
    savePeftAdapter(dir, sampleConfig, sampleTensors());
    expect(fs.readdirSync(dir).sort()).toEqual([PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE]);
  });

  it("parses saved keys, with or without the base_model.model. prefix", () => {
    expect(parseLoraKey("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight")).toEqual({ modulePath: "model.layers.3.mlp.up_proj", half: "B" });
    expect(parseLoraKey("model.layers.3.mlp.up_proj.lora_A.weight")).toEqual({ modulePath: "model.layers.3.mlp.up_proj", half: "A" });
    expect(parseLoraKey("base_model.model.model.embed_tokens.lora_embedding_A")).toBeNull();
  });
});

describe("PEFT adapter folders slimtune refuses", () => {
  const qA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
  const qB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

  it("a missing folder, config or weights file: E_NOT_FOUND naming the file", () => {
    expectSlimtuneError(() => loadPeftAdapter(path.join(root, "nope")), "E_NOT_FOUND", "nope", "adapter folder not found");
    const noConfig = savedSample();
    fs.rmSync(path.join(noConfig, PEFT_CONFIG_FILE));
    expectSlimtuneError(() => loadPeftAdapter(noConfig), "E_NOT_FOUND", path.join(noConfig, PEFT_CONFIG_FILE));
    const noWeights = savedSample();
    fs.rmSync(path.join(noWeights, PEFT_WEIGHTS_FILE));
    expectSlimtuneError(() => loadPeftAdapter(noWeights), "E_NOT_FOUND", path.join(noWeights, PEFT_WEIGHTS_FILE));
    fs.writeFileSync(path.join(noWeights, "adapter_model.bin"), "pickle");
    expectSlimtuneError(() => loadPeftAdapter(noWeights), "E_NOT_FOUND", "adapter_model.bin", "safe_serialization=True");
  });

  it("peft_type other than LORA: E_CONFIG naming the file and the value", () => {
    const dir = withConfig((j) => (j.peft_type = "IA3"));
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_CONFIG", path.join(dir, PEFT_CONFIG_FILE), 'peft_type is "IA3"', '"LORA"');
    const missing = withConfig((j) => delete j.peft_type);
    expectSlimtuneError(() => loadPeftAdapter(missing), "E_CONFIG", "peft_type is undefined");
  });

  it.each([
    ["use_dora", true, "DoRA"],
    ["modules_to_save", ["lm_head"], "modules_to_save"],
    ["rank_pattern", { q_proj: 16 }, "rank_pattern"],
    ["r", 0, "r is 0"],
    ["lora_alpha", null, "lora_alpha is null"],
    ["target_modules", null, "target_modules is null"],
  ])("%s = %j: E_CONFIG", (key, value, mention) => {
    const dir = withConfig((j) => (j[key] = value));
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_CONFIG", PEFT_CONFIG_FILE, mention);
  });

  it("fan_in_fan_out = true (Conv1D base layers, GPT-2) is read, and kept when written", () => {
    const dir = withConfig((j) => (j.fan_in_fan_out = true));
    expect(loadPeftAdapter(dir).config.fanInFanOut).toBe(true);
    expect(peftConfigJson({ ...loadPeftAdapter(dir).config }).fan_in_fan_out).toBe(true);
  });

  it("a tensor whose rank disagrees with r: E_SHAPE naming the key", () => {
    const dir = withTensors([
      { name: qA, shape: [8, 256] },
      { name: qB, shape: [256, 8] },
    ]);
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_SHAPE", PEFT_WEIGHTS_FILE, qA, "[8, 256]", "r = 4");
  });

  it("a tensor that does not fit the model's layer: E_SHAPE naming the key", () => {
    const config = readLlamaConfig(refModelDir);
    const dir = withTensors([
      { name: qA, shape: [4, 128] },
      { name: qB, shape: [256, 4] },
    ]);
    expect(() => loadPeftAdapter(dir)).not.toThrow(); // consistent in itself
    expectSlimtuneError(() => loadPeftAdapter(dir, { config }), "E_SHAPE", PEFT_WEIGHTS_FILE, qA, "[4, 128]", "[r, 256]");
    const deep = withTensors([
      { name: "base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", shape: [4, 256] },
      { name: "base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", shape: [256, 4] },
    ]);
    expectSlimtuneError(() => loadPeftAdapter(deep, { config }), "E_SHAPE", "layers.9.self_attn.q_proj.lora_A.weight", "6-layer");
    // A config with a narrower MLP rejects down_proj's A.
    const narrow = parseLlamaConfig({ ...config.raw, intermediate_size: 512 }, "config.json");
    const down = savedSample();
    expectSlimtuneError(() => loadPeftAdapter(down, { config: narrow }), "E_SHAPE", "down_proj.lora_A.weight", "[r, 512]");
  });

  it.each([
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", [256]],
    ["base_model.model.model.embed_tokens.lora_embedding_A", [4, 4096]],
    ["base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias", [256]],
    ["base_model.model.lm_head.weight", [4096, 256]],
  ])("an unknown key %s: unsupported LoRA weight, naming file and key", (key, shape) => {
    const dir = withTensors([
      { name: qA, shape: [4, 256] },
      { name: qB, shape: [256, 4] },
      { name: key, shape },
    ]);
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_SAFETENSORS", PEFT_WEIGHTS_FILE, `unsupported LoRA weight "${key}"`);
  });

  it("an A without its B", () => {
    const dir = withTensors([{ name: qA, shape: [4, 256] }]);
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_SAFETENSORS", qA, "no partner", qB);
  });

  it("saving refuses incomplete pairs and rank mismatches", () => {
    const t = sampleTensors();
    t.delete(qB);
    expectSlimtuneError(() => savePeftAdapter(fresh("bad"), sampleConfig, t), "E_ARG", qA, "no partner");
    expectSlimtuneError(() => savePeftAdapter(fresh("bad"), { ...sampleConfig, r: 8 }, sampleTensors()), "E_SHAPE", "r = 8");
  });
});
