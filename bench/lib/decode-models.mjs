// Model folders for the decode benchmarks: ref-llama-5m as it is, and the shapes in shared/models
// (config only) with seeded random N(0, 0.02²) weights and a synthetic byte-level tokenizer.

import fs from "node:fs";
import path from "node:path";
import { root, shared } from "./harness.mjs";
import { randomLlamaWeights } from "./random-weights.mjs";

const dist = (m) => import(path.join(root, "dist", m));

/** A model folder: ref-llama-5m as it is; the SmolLM2 shape with seeded random weights and a synthetic tokenizer. */
export async function modelFolder(name, work) {
  if (name === "ref-llama-5m") return path.join(shared, "models/ref-llama-5m");
  const { readLlamaConfig } = await dist("formats/hf-config.js");
  const { llamaParamShapes } = await dist("arch/llama/shapes.js");
  const { LlamaModel } = await dist("models/llama/model.js");
  const { Rng } = await dist("core/rng.js");
  const src = path.join(shared, "models", name);
  const config = readLlamaConfig(src);
  const weights = new Map(randomLlamaWeights(config, 1234, { Rng, llamaParamShapes }).map((w) => [w.name, { data: w.data, shape: w.shape }]));
  const dir = path.join(work, name);
  new LlamaModel(config, weights, null).save(dir);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(syntheticTokenizer(config.vocabSize)));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ add_bos_token: false, eos_token: "<tok0>", bos_token: "<tok0>" }));
  return dir;
}

/** A byte-level BPE tokenizer with `V` tokens: the 256 byte symbols, then "<tokN>" fillers; no merges. */
function syntheticTokenizer(V) {
  const vocab = {};
  const bytes = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(bytes.includes(b) ? b : 256 + extra++)] = b;
  for (let i = 256; i < V; i++) vocab[`<tok${i}>`] = i;
  return {
    version: "1.0",
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}


/**
 * The cached model folder for `name` under `work` (written once, then reused across runs): float
 * with `bits` 0, else quantized by the CLI as the decode benchmarks compare it, RTN 4-bit groups of
 * 32, symmetric (Q4_0's grid). `stdio` "inherit" shows the quantize progress.
 */
export async function cachedDecodeFolder(name, work, bits, { stdio = "ignore" } = {}) {
  let dir = path.join(work, name);
  if (!fs.existsSync(path.join(dir, "config.json"))) dir = await modelFolder(name, work);
  if (bits !== 4) return dir;
  const q = path.join(work, `${name}-q4`);
  if (!fs.existsSync(path.join(q, "config.json"))) {
    const { execFileSync } = await import("node:child_process");
    execFileSync(process.execPath, [path.join(root, "dist/cli/main.js"), "quantize", "--model", dir, "--bits", "4", "--group-size", "32", "--sym", "--out", q, "--json"], { stdio });
  }
  return q;
}
