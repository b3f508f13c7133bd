// The specific reader failures of issue 15, each as a typed error: JSON nested 20,000 deep, sizes
// that would allocate gigabytes (layer counts, vocabulary ids), tokenizers larger than the model,
// FIFOs and devices where files belong, folders that cannot be read, and checkpoints whose two
// files disagree on the step.

import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { buildSync } from "esbuild";
import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { jsonDepthExceeded, parseFields, shownJson } from "../../src/core/json.js";
import { loadCheckpoint, saveCheckpoint, type CheckpointState } from "../../src/formats/checkpoint.js";
import { CLASSIFIER_CONFIG, findClassifierHead, saveClassifierHead } from "../../src/formats/classifier-head.js";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { parseLlamaConfig, readLlamaConfig } from "../../src/formats/hf-config.js";
import { loadPeftAdapter } from "../../src/formats/peft.js";
import { loadQuantizedFolder } from "../../src/formats/quantized/index.js";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";
import { z } from "zod";

const root = tempDir("hardening");
let n = 0;
const fresh = (tag: string) => {
  const dir = path.join(root, `${tag}-${n++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};

const deep = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;
const refConfig = JSON.parse(fs.readFileSync(path.join(refModelDir, "config.json"), "utf8")) as Record<string, unknown>;

/** Copies ref-llama-5m's small files (not the weights) into a fresh folder, with overrides. */
function modelFolder(tag: string, files: Record<string, string> = {}): string {
  const dir = fresh(tag);
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(refModelDir, f), path.join(dir, f));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

async function rejects(p: Promise<unknown>): Promise<SlimtuneError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SlimtuneError);
  return err as SlimtuneError;
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - t0) / 1000 };
}

describe("JSON nested 20,000 levels deep is refused before parsing", () => {
  it("jsonDepthExceeded finds the first bracket past the limit and ignores brackets inside strings", () => {
    expect(jsonDepthExceeded('{"a": "[[[[[[["}', 2)).toBe(-1);
    expect(jsonDepthExceeded('{"a": [[1]]}', 2)).toBe(7);
    expect(jsonDepthExceeded('{"a\\"[": [1]}', 1)).toBe(9);
    expect(jsonDepthExceeded(deep(20_000))).toBe(128);
  });

  it("config.json → E_CONFIG", () => {
    const dir = modelFolder("deep-config", { "config.json": `{"model_type": "llama", "x": ${deep(20_000)}}` });
    expectSlimtuneError(() => readLlamaConfig(dir), "E_CONFIG", "nests deeper than 128", path.join(dir, "config.json"));
  });

  it("tokenizer.json → E_TOKENIZER (before the tokenizer library sees it)", async () => {
    const json = fs.readFileSync(path.join(refModelDir, "tokenizer.json"), "utf8").replace('"normalizer": null', `"normalizer": ${deep(20_000)}`);
    expect(json).toContain("[[[[");
    const dir = modelFolder("deep-tokenizer", { "tokenizer.json": json });
    const err = await rejects(loadTokenizer(dir));
    expect(err.code).toBe("E_TOKENIZER");
    expect(err.message).toContain("nests deeper");
  });

  it("a safetensors header → E_SAFETENSORS", () => {
    const header = Buffer.from(`{"__metadata__": {"a": ${deep(20_000)}}}`);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = path.join(fresh("deep-st"), "model.safetensors");
    fs.writeFileSync(file, Buffer.concat([prefix, header]));
    expectSlimtuneError(() => SafetensorsFile.open(file), "E_SAFETENSORS", "nests deeper", file);
  });

  it("adapter_config.json → E_CONFIG", () => {
    const dir = fresh("deep-peft");
    fs.writeFileSync(path.join(dir, "adapter_config.json"), `{"peft_type": "LORA", "target_modules": ${deep(20_000)}}`);
    expectSlimtuneError(() => loadPeftAdapter(dir), "E_CONFIG", "nests deeper");
  });

  it("a quantized folder's quantize_config.json → E_CONFIG", () => {
    const dir = modelFolder("deep-quant", { "quantize_config.json": `{"bits": 4, "dynamic": ${deep(20_000)}}` });
    // Too deep to read is the same as absent: a config.json without quantization_config is a float model.
    expectSlimtuneError(() => loadQuantizedFolder(dir), "E_CONFIG", "quantization_config");
  });

  it("checkpoint state.json → E_CHECKPOINT", () => {
    const dir = fresh("deep-ckpt");
    fs.writeFileSync(path.join(dir, "state.json"), `{"format": "slimtune-checkpoint", "rng": ${deep(20_000)}}`);
    expectSlimtuneError(() => loadCheckpoint(dir, { method: "lora", fixed: {} }, new Map()), "E_CHECKPOINT", "nests deeper");
  });

  it("a deep value built in memory only shortens the message (no stack overflow while quoting it)", () => {
    let value: unknown = 1;
    for (let i = 0; i < 20_000; i++) value = [value];
    expectSlimtuneError(() => parseLlamaConfig({ ...refConfig, rope_scaling: { rope_type: "yarn", deep: value } }, "c.json"), "E_CONFIG", "rope_scaling", "{object}");
    expect(shownJson([1n << 40n, 2])).toBe("[1099511627776,2]");
    expectSlimtuneError(() => parseFields({ a: value }, { a: z.number() }, { a: "a number" }, { file: "f.json", fix: "fix it" }), "E_CONFIG", '"a" is [array]');
  });
});

describe("sizes are bounded before anything is allocated", () => {
  it("num_hidden_layers 6,000,000 → E_CONFIG at once", () => {
    const dir = modelFolder("layers", { "config.json": JSON.stringify({ ...refConfig, num_hidden_layers: 6_000_000 }) });
    const { seconds } = timed(() => expectSlimtuneError(() => readLlamaConfig(dir), "E_CONFIG", "num_hidden_layers", "6000000", "up to 1,024"));
    expect(seconds).toBeLessThan(1);
  });

  it.each([
    ["vocab_size", 1e9],
    ["hidden_size", 1 << 30],
    ["intermediate_size", 1 << 30],
    ["num_attention_heads", 1e6],
    ["head_dim", 1 << 20],
    ["max_position_embeddings", 1e12],
  ])("%s %d → E_CONFIG", (field, value) => {
    expectSlimtuneError(() => parseLlamaConfig({ ...refConfig, [field]: value }, "c.json"), "E_CONFIG", field);
  });

  it("bos/eos ids must have an embedding row", () => {
    expectSlimtuneError(() => parseLlamaConfig({ ...refConfig, eos_token_id: 4096 }, "c.json"), "E_CONFIG", "eos_token_id 4096", "vocab_size 4096");
    expectSlimtuneError(() => parseLlamaConfig({ ...refConfig, bos_token_id: 10_000 }, "c.json"), "E_CONFIG", "bos_token_id");
  });

  it("a tokenizer vocabulary id of 1e9 → E_TOKENIZER in well under a second", async () => {
    const tok = JSON.parse(fs.readFileSync(path.join(refModelDir, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> } };
    tok.model.vocab["zzz-huge"] = 1e9;
    const dir = modelFolder("huge-id", { "tokenizer.json": JSON.stringify(tok) });
    const t0 = performance.now();
    const err = await rejects(loadTokenizer(dir));
    expect((performance.now() - t0) / 1000).toBeLessThan(1);
    expect(err.code).toBe("E_TOKENIZER");
    expect(err.message).toContain("1000000000");
    expect(err.message).toContain('"zzz-huge"');
  });

  it("an added token with a fractional or negative id → E_TOKENIZER", async () => {
    for (const id of [-1, 2.5, "7"]) {
      const tok = JSON.parse(fs.readFileSync(path.join(refModelDir, "tokenizer.json"), "utf8")) as { added_tokens: Array<{ id: unknown }> };
      tok.added_tokens[0]!.id = id;
      const err = await rejects(loadTokenizer(modelFolder("bad-added", { "tokenizer.json": JSON.stringify(tok) })));
      expect(err.code).toBe("E_TOKENIZER");
      expect(err.message).toContain("added_tokens[0]");
    }
  });
});

describe("classifier heads are bounded and checked against their model", () => {
  const head = () => {
    const dir = fresh("head");
    saveClassifierHead(dir, { data: new Float32Array(3 * 64), shape: [3, 64] }, { maxLen: 32, padId: 5 });
    return dir;
  };

  it("fits: loads; another hidden size → E_SHAPE; a pad id past the vocabulary → E_CONFIG", () => {
    const dir = head();
    expect(findClassifierHead([dir], { hiddenSize: 64, vocabSize: 96 })?.numLabels).toBe(3);
    expectSlimtuneError(() => findClassifierHead([dir], { hiddenSize: 256, vocabSize: 4096 }), "E_SHAPE", "hidden size is 256");
    expectSlimtuneError(() => findClassifierHead([dir], { hiddenSize: 64, vocabSize: 4 }), "E_CONFIG", "pad_token_id 5");
  });

  it("num_labels 1e11 or max_len 1e12 in classifier.json → E_CONFIG before the tensor is read", () => {
    for (const [field, value] of [["num_labels", 1e11], ["max_len", 1e12], ["pad_token_id", 1e10]] as const) {
      const dir = head();
      const json = JSON.parse(fs.readFileSync(path.join(dir, CLASSIFIER_CONFIG), "utf8")) as Record<string, unknown>;
      fs.writeFileSync(path.join(dir, CLASSIFIER_CONFIG), JSON.stringify({ ...json, [field]: value }));
      expectSlimtuneError(() => findClassifierHead([dir]), "E_CONFIG", field);
    }
  });
});

describe("a tokenizer with more tokens than the model's vocab_size is refused at load", () => {
  it("E_TOKENIZER naming tokenizer.json and config.json", async () => {
    const dir = modelFolder("too-many-tokens", { "config.json": JSON.stringify({ ...refConfig, vocab_size: 4000, bos_token_id: 0, eos_token_id: 0 }) });
    const err = await rejects(loadTokenizer(dir));
    expect(err.code).toBe("E_TOKENIZER");
    expect(err.message).toContain(path.join(dir, "tokenizer.json"));
    expect(err.message).toContain(path.join(dir, "config.json"));
    expect(err.message).toContain("4095");
    expect(err.message).toContain("only 4000 embedding rows");
  });

  it("a model with more rows than tokens (padded embeddings) loads", async () => {
    const dir = modelFolder("padded", { "config.json": JSON.stringify({ ...refConfig, vocab_size: 4224 }) });
    expect((await loadTokenizer(dir)).vocabSize).toBe(4096);
  });
});

describe("special files where a file belongs", () => {
  const fifoDir = fresh("fifo");
  const fifo = path.join(fifoDir, "model.safetensors");
  execFileSync("mkfifo", [fifo]);

  it("a FIFO as model.safetensors → E_IO without opening it (opening would block forever)", () => {
    expectSlimtuneError(() => SafetensorsFile.open(fifo), "E_IO", "not a regular file", fifo);
  });

  it("a FIFO as config.json, tokenizer.json or a GGUF file → E_IO", async () => {
    const dir = fresh("fifo-json");
    execFileSync("mkfifo", [path.join(dir, "config.json")]);
    execFileSync("mkfifo", [path.join(dir, "tokenizer.json")]);
    expectSlimtuneError(() => readLlamaConfig(dir), "E_IO", "not a regular file");
    expect((await rejects(loadTokenizer(dir))).code).toBe("E_IO");
    const gguf = path.join(dir, "model.gguf");
    execFileSync("mkfifo", [gguf]);
    expectSlimtuneError(() => readGgufHeader(gguf), "E_IO", "not a regular file");
  });

  it("/dev/zero as model.safetensors (a symlink) → E_IO, not 'file is 0 bytes'", () => {
    const link = path.join(fresh("devzero"), "model.safetensors");
    fs.symlinkSync("/dev/zero", link);
    const err = expectSlimtuneError(() => SafetensorsFile.open(link), "E_IO", "not a regular file");
    expect(err.message).not.toContain("0 bytes");
  });
});

describe("a model folder that cannot be read is E_IO, not 'config.json is missing'", () => {
  /** Runs `readLlamaConfig(dir)` as an unprivileged user (root reads anything) and returns its error code. */
  function codeAsNobody(dir: string): string {
    if (process.getuid?.() !== 0) {
      try {
        readLlamaConfig(dir);
        return "loaded";
      } catch (err) {
        return (err as SlimtuneError).code ?? String(err);
      }
    }
    const bundle = path.join(path.dirname(dir), "read-config.mjs");
    buildSync({
      stdin: {
        contents: `import { readLlamaConfig } from "./src/formats/hf-config.ts";
          try { readLlamaConfig(process.argv[1]); console.log("loaded"); } catch (err) { console.log(err.code ?? String(err)); }`,
        resolveDir: path.resolve(import.meta.dirname, "../.."),
        loader: "ts",
      },
      bundle: true,
      platform: "node",
      format: "esm",
      outfile: bundle,
      logLevel: "silent",
    });
    fs.chmodSync(bundle, 0o644);
    const script = `process.setgid(65534); process.setuid(65534); await import(${JSON.stringify(bundle)});`;
    const out = spawnSync(process.execPath, ["--input-type=module", "-e", script, dir], { encoding: "utf8", timeout: 30_000 });
    expect(out.stderr).toBe("");
    return out.stdout.trim();
  }

  it("chmod 000 on the folder → E_IO; the same folder readable → loads", () => {
    const parent = fresh("unreadable");
    fs.chmodSync(root, 0o755);
    fs.chmodSync(parent, 0o755);
    const dir = path.join(parent, "model");
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(refModelDir, "config.json"), path.join(dir, "config.json"));
    fs.chmodSync(path.join(dir, "config.json"), 0o644);
    fs.chmodSync(dir, 0o755);
    expect(codeAsNobody(dir)).toBe("loaded");
    fs.chmodSync(dir, 0o000);
    try {
      expect(codeAsNobody(dir)).toBe("E_IO");
    } finally {
      fs.chmodSync(dir, 0o755);
    }
  });
});

describe("error messages cap what they quote from a file", () => {
  const longName = `t${"x".repeat(1 << 20)}`;

  it("a megabyte tensor name in a broken safetensors header", () => {
    const header = Buffer.from(JSON.stringify({ [longName]: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = path.join(fresh("long-name"), "model.safetensors");
    fs.writeFileSync(file, Buffer.concat([prefix, header, Buffer.alloc(4)]));
    const err = expectSlimtuneError(() => SafetensorsFile.open(file), "E_SAFETENSORS", "txxxx", "needs 8");
    expect(err.message.length).toBeLessThan(600);
  });

  it("a megabyte LoRA key, a megabyte config value, a megabyte GGUF key", () => {
    const dir = fresh("long-peft");
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ peft_type: "LORA", r: 1, lora_alpha: 1, target_modules: ["q_proj"] }));
    const prefix = Buffer.alloc(8);
    const header = Buffer.from(JSON.stringify({ [longName]: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }));
    prefix.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(path.join(dir, "adapter_model.safetensors"), Buffer.concat([prefix, header, Buffer.alloc(4)]));
    expect(expectSlimtuneError(() => loadPeftAdapter(dir), "E_SAFETENSORS", "unsupported LoRA weight").message.length).toBeLessThan(600);

    const config = expectSlimtuneError(() => parseLlamaConfig({ ...refConfig, hidden_act: longName }, "c.json"), "E_CONFIG", "hidden_act");
    expect(config.message.length).toBeLessThan(600);

    // GGUF: magic, version 3, 0 tensors, 2 keys; the same megabyte key twice.
    const key = Buffer.from(longName);
    const kv = () => {
      const b = Buffer.alloc(8 + key.length + 4 + 1);
      b.writeBigUInt64LE(BigInt(key.length), 0);
      key.copy(b, 8);
      b.writeInt32LE(0, 8 + key.length); // u8 value type
      return b;
    };
    const head = Buffer.alloc(24);
    head.writeUInt32LE(0x46554747, 0);
    head.writeUInt32LE(3, 4);
    head.writeBigUInt64LE(0n, 8);
    head.writeBigUInt64LE(2n, 16);
    const gguf = path.join(dir, "dup.gguf");
    fs.writeFileSync(gguf, Buffer.concat([head, kv(), kv()]));
    expect(expectSlimtuneError(() => readGgufHeader(gguf), "E_GGUF", "appears twice").message.length).toBeLessThan(600);
  });
});

describe("a checkpoint whose optimizer and state disagree on the step → E_CHECKPOINT", () => {
  const trainable = () => new Map([["w", { data: Float32Array.from([1, 2, 3]), shape: [3] }]]);
  const state = (step: number): CheckpointState => ({
    format: "slimtune-checkpoint",
    version: 1,
    method: "lora",
    step,
    rng: [1, 2, 3, 4],
    fixed: { seq: 8 },
    elapsedSeconds: 1,
    tokensSeen: 100,
  });
  const moments = (step: number) => ({ step, m: new Map([["w", new Float32Array(3)]]), v: new Map([["w", new Float32Array(3)]]) });
  const expected = { method: "lora", fixed: { seq: 8 } };

  it("optimizer step past state.json's → E_CHECKPOINT naming both steps", () => {
    const dir = path.join(fresh("ckpt"), "checkpoint");
    saveCheckpoint(dir, state(5), trainable(), moments(9));
    expectSlimtuneError(() => loadCheckpoint(dir, expected, trainable()), "E_CHECKPOINT", "optimizer step 9", "step 5", "optimizer.safetensors");
  });

  it("equal steps, or an optimizer lagging by skipped (non-finite) steps, resume", () => {
    for (const [s, o] of [[5, 5], [5, 3]] as const) {
      const dir = path.join(fresh("ckpt-ok"), "checkpoint");
      saveCheckpoint(dir, state(s), trainable(), moments(o));
      expect(loadCheckpoint(dir, expected, trainable()).moments.step).toBe(o);
    }
  });

  it("a missing or malformed optimizer step → E_CHECKPOINT, never a silent 0", () => {
    const dir = path.join(fresh("ckpt-nostep"), "checkpoint");
    saveCheckpoint(dir, state(5), trainable(), moments(5));
    const file = path.join(dir, "optimizer.safetensors");
    const st = SafetensorsFile.open(file);
    // Rewrite the header without the step (same tensors, same bytes).
    const raw = fs.readFileSync(file);
    const headerLength = Number(raw.readBigUInt64LE(0));
    const header = JSON.parse(raw.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, unknown>;
    for (const step of [undefined, "-1", "1e3", "x"]) {
      header.__metadata__ = step === undefined ? {} : { step };
      const text = Buffer.from(JSON.stringify(header));
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(text.length));
      fs.writeFileSync(file, Buffer.concat([prefix, text, raw.subarray(8 + headerLength)]));
      expectSlimtuneError(() => loadCheckpoint(dir, expected, trainable()), "E_CHECKPOINT", 'metadata "step"');
    }
    expect(st.names().sort()).toEqual(["m.w", "v.w"]);
  });
});
