// KL(reference ‖ model) per predicted token computed inside transformers.js (onnxruntime-node): both
// transformers.js folders run on the first N WikiText-2 test tokens (tokenized by slimtune, fed as
// ids) in non-overlapping windows of `ctx`, positions 1..L−1 of each window, full vocabulary — the
// protocol of slimtune's eval --reference and of bench/lib/llama-kl.mjs. Each folder is loaded at
// the dtype its config.json records ("transformers.js_config".dtype). Prints one JSON line.
//
//   node bench/lib/onnx-kl.mjs REFERENCE_DIR MODEL_DIR --tokens 2048 --ctx 256

import fs from "node:fs";
import path from "node:path";
import { AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { baseModel, root, wikiTest } from "./harness.mjs";

const [refDir, modelDir, ...rest] = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const maxTokens = Number(flag("tokens", "2048"));
const ctx = Number(flag("ctx", "256"));
const { loadTokenizer } = await import(path.join(root, "dist/formats/tokenizer.js"));
const { tokenizeFile } = await import(path.join(root, "dist/data/text-file.js"));
const tokens = tokenizeFile(wikiTest, await loadTokenizer(baseModel), maxTokens);
env.allowRemoteModels = false;
env.allowLocalModels = true;

/** Log-probabilities [positions][V] of every predicting position of every window. */
async function logProbs(dir) {
  const abs = path.resolve(dir);
  env.localModelPath = path.dirname(abs);
  const dtype = JSON.parse(fs.readFileSync(path.join(abs, "config.json"), "utf8"))["transformers.js_config"]?.dtype ?? "fp32";
  const model = await AutoModelForCausalLM.from_pretrained(path.basename(abs), { dtype, device: "cpu" });
  const out = [];
  for (let s = 0; s + 1 < tokens.length; s += ctx) {
    const w = Array.from(tokens.subarray(s, Math.min(s + ctx, tokens.length)));
    if (w.length < 2) break;
    const ids = new Tensor("int64", BigInt64Array.from(w, BigInt), [1, w.length]);
    const mask = new Tensor("int64", new BigInt64Array(w.length).fill(1n), [1, w.length]);
    const { logits } = await model({ input_ids: ids, attention_mask: mask });
    const V = logits.dims.at(-1);
    const data = logits.data;
    for (let i = 0; i < w.length - 1; i++) {
      const row = data.subarray(i * V, (i + 1) * V);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      const lse = max + Math.log(sum);
      out.push(Float64Array.from(row, (v) => v - lse));
    }
  }
  await model.dispose();
  return { out, dtype };
}

const started = performance.now();
const ref = await logProbs(refDir);
const got = await logProbs(modelDir);
let kl = 0;
let top1 = 0;
const argmax = (r) => r.reduce((best, v, i) => (v > r[best] ? i : best), 0);
for (let i = 0; i < ref.out.length; i++) {
  const p = ref.out[i];
  const q = got.out[i];
  let sum = 0;
  for (let v = 0; v < p.length; v++) sum += Math.exp(p[v]) * (p[v] - q[v]);
  kl += Math.max(0, sum);
  if (argmax(p) === argmax(q)) top1++;
}
process.stdout.write(`${JSON.stringify({ kl: kl / ref.out.length, top1: top1 / ref.out.length, positions: ref.out.length, reference_dtype: ref.dtype, dtype: got.dtype, seconds: (performance.now() - started) / 1000 })}\n`);
