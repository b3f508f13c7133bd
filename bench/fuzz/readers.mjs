// One fuzz target per reader: how to write its valid files (with slimtune's own writers) and how to
// load a case folder. `lib` holds slimtune's modules, from src/ (test/fuzz) or dist/
// (bench/fuzz-readers.mjs), so both run the same targets. A case's only allowed outcomes are a
// SlimtuneError with a code, or a valid load.

import fs from "node:fs";
import path from "node:path";
import { mutateFile, mutationArb } from "./mutate.mjs";

/** Deterministic small weights (no RNG needed: the fuzzer mutates files, not values). */
function wave(count, seed) {
  return Float32Array.from({ length: count }, (_, i) => Math.sin(seed * 7.31 + i * 0.37) * 0.05);
}

/** A 1-layer LLaMA with every width a multiple of 32 (GPTQ packs along both axes). */
function tinyModel(lib) {
  const config = lib.parseLlamaConfig(
    { model_type: "llama", hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, vocab_size: 96, tie_word_embeddings: true },
    "tiny/config.json",
  );
  const weights = new Map();
  let i = 0;
  for (const [name, shape] of lib.llamaParamShapes(config)) weights.set(name, { data: wave(shape.reduce((a, b) => a * b, 1), i++), shape });
  return { config, weights, sourceDir: null };
}

const rtn4 = { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false };

/** @type {Array<{ name: string, files: string[], seed: (lib: any, dir: string) => Promise<any>, load: (lib: any, dir: string, ctx: any) => Promise<void> }>} */
export const readers = [
  {
    name: "safetensors",
    files: ["model.safetensors"],
    async seed(lib, dir) {
      lib.writeSafetensors(path.join(dir, "model.safetensors"), [
        { name: "a.weight", dtype: "F32", shape: [4, 8], data: wave(32, 1) },
        { name: "b.half", dtype: "F16", shape: [16], data: new Uint16Array(16).fill(0x3c00) },
        { name: "c.bf16", dtype: "BF16", shape: [2, 3], data: new Uint16Array(6).fill(0x3f80) },
        { name: "d.ids", dtype: "I32", shape: [2, 2], data: Int32Array.from([1, 2, 3, 4]) },
      ], { format: "pt" });
    },
    async load(lib, dir) {
      const st = lib.SafetensorsFile.open(path.join(dir, "model.safetensors"));
      for (const [name, e] of st.entries) {
        if (["F32", "F16", "BF16", "F64"].includes(e.dtype)) st.float32(name);
        else st.raw(name);
      }
    },
  },
  {
    name: "hf-folder",
    files: ["config.json", "model.safetensors"],
    async seed(lib, dir) {
      const model = tinyModel(lib);
      lib.saveLlamaFolder(dir, model.config, new Map([...model.weights].map(([k, v]) => [k, v.data])));
    },
    async load(lib, dir) {
      lib.loadLlamaWeights(dir, lib.readLlamaConfig(dir));
    },
  },
  {
    name: "tokenizer",
    files: ["tokenizer.json", "tokenizer_config.json", "config.json"],
    async seed(lib, dir) {
      for (const f of this.files) fs.copyFileSync(path.join(lib.refModelDir, f), path.join(dir, f));
    },
    async load(lib, dir) {
      const tok = await lib.loadTokenizer(dir);
      tok.decode(tok.encodePrompt("The tower is 324 metres tall."));
    },
  },
  ...["gptq", "nf4"].map((kind) => ({
    name: kind,
    files: kind === "gptq" ? ["config.json", "quantize_config.json", "model.safetensors"] : ["config.json", "model.safetensors"],
    async seed(lib, dir) {
      const spec = kind === "gptq" ? rtn4 : { scheme: "nf4", bits: 4, groupSize: 32, symmetric: true };
      lib.saveQuantizedFolder(dir, lib.quantizeModel(tinyModel(lib), spec));
    },
    async load(lib, dir) {
      lib.loadQuantizedFolder(dir);
    },
  })),
  {
    name: "reallm",
    files: ["config.json", "model.safetensors"],
    async seed(lib, dir) {
      const gemm = new lib.HostGemm({ threads: 1 });
      const nearest = new lib.NearestCentroid({ threads: 1 });
      try {
        const { qm } = await lib.quantizeReallmModel(tinyModel(lib), { budget: 4, rank: 2, seed: 0, gemm, nearest, blockSize: 32, permute: true, maxIterations: 2 });
        lib.saveQuantizedFolder(dir, qm);
      } finally {
        await gemm.release();
        await nearest.release();
      }
    },
    async load(lib, dir) {
      lib.loadQuantizedFolder(dir);
    },
  },
  {
    name: "peft",
    files: ["adapter_config.json", "adapter_model.safetensors"],
    async seed(lib, dir) {
      const { config } = tinyModel(lib);
      const tensors = new Map();
      for (const [module, n, k] of [["model.layers.0.self_attn.q_proj", 64, 64], ["model.layers.0.mlp.down_proj", 64, 128]]) {
        const { a, b } = lib.loraKeys(module);
        tensors.set(a, { data: wave(4 * k, 1), shape: [4, k] });
        tensors.set(b, { data: wave(n * 4, 2), shape: [n, 4] });
      }
      lib.savePeftAdapter(dir, { r: 4, loraAlpha: 8, targetModules: ["q_proj", "down_proj"], baseModelNameOrPath: null }, tensors);
      return { config };
    },
    async load(lib, dir, ctx) {
      lib.loadPeftAdapter(dir, { config: ctx.config });
    },
  },
  {
    name: "peqa",
    files: ["peqa_adapter.json", "adapter_model.safetensors"],
    async seed(lib, dir) {
      const qm = lib.quantizeModel(tinyModel(lib), rtn4);
      const scales = new Map();
      for (const [p, q] of qm.linears) {
        const shape = lib.scaleShape(lib.gridLayer(q, p, "a PEQA adapter"));
        scales.set(lib.scaleName(p), { data: wave(shape.reduce((a, b) => a * b, 1), 3).map(Math.abs), shape });
      }
      lib.savePeqaAdapter(dir, qm, scales);
      return { qm };
    },
    async load(lib, dir, ctx) {
      lib.loadPeqaAdapter(dir, ctx.qm);
    },
  },
  {
    name: "checkpoint",
    files: ["state.json", "trainable.safetensors", "optimizer.safetensors"],
    async seed(lib, dir) {
      const state = { format: "slimtune-checkpoint", version: 1, method: "lora", step: 7, rng: [1, 2, 3, 4], fixed: { seq: 8, task: "lm" }, elapsedSeconds: 3.5, tokensSeen: 1000 };
      const trainable = () => new Map([["a.lora_A", { data: wave(12, 1), shape: [3, 4] }], ["b.lora_B", { data: wave(8, 2), shape: [8] }]]);
      const moments = { step: 7, m: new Map([["a.lora_A", wave(12, 3)], ["b.lora_B", wave(8, 4)]]), v: new Map([["a.lora_A", wave(12, 5).map(Math.abs)], ["b.lora_B", wave(8, 6).map(Math.abs)]]) };
      lib.saveCheckpoint(dir, state, trainable(), moments);
      return { trainable };
    },
    async load(lib, dir, ctx) {
      lib.loadCheckpoint(dir, { method: "lora", fixed: { seq: 8, task: "lm" } }, ctx.trainable());
    },
  },
  {
    name: "classifier-head",
    files: ["classifier.json", "classifier.safetensors"],
    async seed(lib, dir) {
      lib.saveClassifierHead(dir, { data: wave(3 * 64, 1), shape: [3, 64] }, { maxLen: 32, padId: 0 });
    },
    async load(lib, dir) {
      lib.findClassifierHead([dir]);
    },
  },
  {
    name: "finegates",
    files: ["finegates.json", "finegates.safetensors"],
    async seed(lib, dir) {
      const config = { format: "slimtune-finegates", version: 2, base_model: null, target_sparsity: 0.3, lambda: 1, sigma: 0.1, lora_rank: 0, lora_alpha: 16, lora_targets: [], residual_gates: false, hardened: true };
      const tensors = new Map([
        ["finegates.model.layers.0.mlp.channels_mu", { data: wave(128, 1), shape: [128] }],
        ["finegates.model.layers.0.self_attn.heads_mu", { data: wave(2, 2), shape: [2] }],
      ]);
      lib.saveFineGatesRun(dir, config, tensors, { removed: { heads: 0, channels: 12 } });
    },
    async load(lib, dir) {
      lib.loadFineGatesRun(dir);
    },
  },
  {
    name: "gguf",
    files: ["model.gguf"],
    async seed(lib, dir) {
      const json = JSON.parse(fs.readFileSync(path.join(lib.refModelDir, "tokenizer.json"), "utf8"));
      const config = JSON.parse(fs.readFileSync(path.join(lib.refModelDir, "tokenizer_config.json"), "utf8"));
      const keys = lib.ggufTokenizerKeys({ json, config, file: "tokenizer.json" }, 4096, { bos: 4095, eos: 4095 });
      const T = lib.GGML_TYPES;
      const tensor = (name, ne, type) => ({ name, ne, type, data: lib.encodeRows(type, wave(ne.reduce((a, b) => a * b, 1), name.length)) });
      const gguf = {
        metadata: [["general.architecture", { type: "string", value: "llama" }], ["llama.block_count", { type: "u32", value: 1 }], ...keys],
        tensors: [tensor("token_embd.weight", [32, 4096], T.Q4_0), tensor("blk.0.attn_q.weight", [32, 8], T.F32), tensor("blk.0.attn_k.weight", [64, 2], T.Q8_0), tensor("output_norm.weight", [16], T.F16)],
      };
      lib.writeGguf(path.join(dir, "model.gguf"), gguf.metadata, gguf.tensors);
      return { gguf };
    },
    ggufKv: true,
    async load(lib, dir) {
      const file = path.join(dir, "model.gguf");
      const gguf = lib.readGgufHeader(file);
      for (const name of gguf.tensors.keys()) lib.readTensor(gguf, name);
      await lib.loadTokenizer(file);
    },
  },
  {
    // A whole LLaMA model as GGUF (hyperparameters, tokenizer keys, every tensor): readLlamaGguf.
    name: "llama-gguf",
    files: ["model.gguf"],
    async seed(lib, dir) {
      const json = JSON.parse(fs.readFileSync(path.join(lib.refModelDir, "tokenizer.json"), "utf8"));
      const tokConfig = JSON.parse(fs.readFileSync(path.join(lib.refModelDir, "tokenizer_config.json"), "utf8"));
      const config = lib.parseLlamaConfig(
        { model_type: "llama", hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 4096, max_position_embeddings: 256, tie_word_embeddings: true },
        "tiny/config.json",
      );
      const T = lib.GGML_TYPES;
      const tensors = [...lib.llamaParamShapes(config)].map(([name, shape], i) => {
        const ne = [...shape].reverse();
        const type = ne.length === 2 && name !== "model.embed_tokens.weight" ? T.Q8_0 : T.F16;
        return { name: lib.ggufTensorName(name), ne, type, data: lib.encodeRows(type, wave(shape.reduce((a, b) => a * b, 1), i)) };
      });
      const widths = { heads: [2], kvHeads: [1], ff: [64] };
      const metadata = [
        ["general.architecture", { type: "string", value: "llama" }],
        ...lib.llamaHyperparameters(config, "llama", widths),
        ...lib.ggufTokenizerKeys({ json, config: tokConfig, file: "tokenizer.json" }, 4096, { bos: 4095, eos: 4095 }),
      ];
      lib.writeGguf(path.join(dir, "model.gguf"), metadata, tensors);
      return { gguf: { metadata, tensors } };
    },
    ggufKv: true,
    async load(lib, dir) {
      lib.readLlamaGguf(path.join(dir, "model.gguf"));
    },
  },
  {
    name: "tsv",
    files: ["data.tsv"],
    async seed(lib, dir) {
      const lines = fs.readFileSync(path.join(lib.sharedDir, "data/sst-2/dev.tsv"), "utf8").split("\n").slice(0, 60);
      fs.writeFileSync(path.join(dir, "data.tsv"), `${lines.join("\n")}\n`);
    },
    async load(lib, dir) {
      lib.readLabelledTsv(path.join(dir, "data.tsv"));
    },
  },
  {
    name: "text",
    files: ["data.txt"],
    async seed(lib, dir) {
      const text = fs.readFileSync(path.join(lib.sharedDir, "data/wikitext-2/valid.txt")).subarray(0, 8_000);
      fs.writeFileSync(path.join(dir, "data.txt"), text.subarray(0, text.lastIndexOf(0x0a) + 1));
      return { tokenizer: await lib.loadTokenizer(lib.refModelDir) };
    },
    async load(lib, dir, ctx) {
      const file = path.join(dir, "data.txt");
      lib.tokenizeFile(file, ctx.tokenizer, 300);
      lib.tokenizeFile(file, ctx.tokenizer);
    },
  },
];

function ggufKvArb(fc) {
  const value = fc.oneof(
    fc.constantFrom(0, 1, 2, 6_000_000, 0x7fffffff, 0xffffffff).map((v) => ({ type: "u32", value: v })),
    fc.constantFrom(-1, -2147483648, 1 << 30).map((v) => ({ type: "i32", value: v })),
    fc.constantFrom(0n, 1n << 40n, 2n ** 64n - 1n).map((v) => ({ type: "u64", value: v })),
    fc.constantFrom(0, -1, 1e30, Number.NaN, Number.POSITIVE_INFINITY).map((v) => ({ type: "f32", value: v })),
    fc.constantFrom("", "llama", "deci", "gpt2", "x".repeat(10_000)).map((v) => ({ type: "string", value: v })),
    fc.boolean().map((v) => ({ type: "bool", value: v })),
    fc.array(fc.integer({ min: -1, max: 1 << 20 }), { maxLength: 4 }).map((values) => ({ type: "array", of: "i32", values })),
    fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }).map((values) => ({ type: "array", of: "string", values })),
    fc.constant(null), // removes the key
  );
  return fc.record({ kind: fc.constant("gguf-kv"), file: fc.constant(0), pick: fc.integer({ min: 0, max: 999_999 }).map((x) => x / 1e6), value });
}

/**
 * A reader ready to fuzz: its valid files written once under `workDir`, an arbitrary of
 * mutations, and `run(mutation, caseDir)` that writes the mutated folder and loads it, returning
 * "accepted", "E_<code>" for a SlimtuneError, or throwing anything else.
 */
export async function prepareReader(lib, fc, name, workDir) {
  const reader = readers.find((r) => r.name === name);
  if (!reader) throw new Error(`no reader "${name}"; readers: ${readers.map((r) => r.name).join(", ")}`);
  const seedDir = path.join(workDir, `${name}-seed`);
  fs.rmSync(seedDir, { recursive: true, force: true });
  fs.mkdirSync(seedDir, { recursive: true });
  const ctx = (await reader.seed(lib, seedDir)) ?? {};
  const seedBytes = reader.files.map((f) => new Uint8Array(fs.readFileSync(path.join(seedDir, f))));
  // The unmutated files must load, or every typed error below would prove nothing.
  await reader.load(lib, seedDir, ctx);
  // GGUF readers also get structured mutations: one metadata value replaced (a count of 6 M, a
  // negative id, a wrong type) or removed, re-encoded with the writer so the rest stays valid.
  const arbitrary = reader.ggufKv ? fc.oneof({ arbitrary: mutationArb(fc, reader.files.length), weight: 2 }, { arbitrary: ggufKvArb(fc), weight: 1 }) : mutationArb(fc, reader.files.length);
  return {
    arbitrary,
    /** Writes the case folder (kept afterwards, so a failing case can be copied out). */
    write(m, caseDir) {
      fs.rmSync(caseDir, { recursive: true, force: true });
      fs.mkdirSync(caseDir, { recursive: true });
      if (m.kind === "gguf-kv") {
        const { metadata, tensors } = ctx.gguf;
        const i = Math.floor(m.pick * metadata.length);
        const changed = m.value === null ? metadata.filter((_, j) => j !== i) : metadata.map((kv, j) => (j === i ? [kv[0], m.value] : kv));
        // encodeGguf, not writeGguf: the atomic write's fsyncs would dominate the case.
        fs.writeFileSync(path.join(caseDir, reader.files[0]), Buffer.concat(lib.encodeGguf(changed, tensors)));
        return;
      }
      reader.files.forEach((f, i) => fs.writeFileSync(path.join(caseDir, f), i === m.file ? mutateFile(f, seedBytes[i], m) : seedBytes[i]));
    },
    async run(m, caseDir) {
      this.write(m, caseDir);
      try {
        await reader.load(lib, caseDir, ctx);
        return "accepted";
      } catch (err) {
        if (err instanceof lib.SlimtuneError && typeof err.code === "string" && err.code.startsWith("E_")) return err.code;
        throw err;
      }
    },
  };
}

export const readerNames = readers.map((r) => r.name);
