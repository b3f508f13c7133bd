// KL(reference ‖ model) per predicted token computed inside llama.cpp (node-llama-cpp): both GGUF
// files run on the first N WikiText-2 test tokens (tokenized by slimtune, fed as ids) in
// non-overlapping windows of `ctx`, positions 1..L−1 of each window, over the full vocabulary — the
// protocol of slimtune's eval --reference (eval/kl.ts). Prints one JSON line.
//
//   node bench/lib/llama-kl.mjs REFERENCE.gguf MODEL.gguf --tokens 2048 --ctx 256

import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { baseModel, root, wikiTest } from "./harness.mjs";

const [refFile, modelFile, ...rest] = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const maxTokens = Number(flag("tokens", "2048"));
const ctx = Number(flag("ctx", "256"));
const { loadTokenizer } = await import(path.join(root, "dist/formats/tokenizer.js"));
const { tokenizeFile } = await import(path.join(root, "dist/data/text-file.js"));
const tokens = tokenizeFile(wikiTest, await loadTokenizer(baseModel), maxTokens);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });

/** Next-token distributions (Map token → p) at each predicting position of every window. */
async function distributions(file) {
  const model = await llama.loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: ctx, batchSize: ctx, threads: 1 });
  const sequence = context.getSequence();
  const out = [];
  for (let s = 0; s + 1 < tokens.length; s += ctx) {
    const w = Array.from(tokens.subarray(s, Math.min(s + ctx, tokens.length)));
    if (w.length < 2) break;
    await sequence.clearHistory();
    const res = await sequence.controlledEvaluate(w.map((t, i) => (i < w.length - 1 ? [t, { generateNext: { probabilities: true } }] : t)));
    for (let i = 0; i < w.length - 1; i++) out.push(res[i].next.probabilities);
  }
  await context.dispose();
  await model.dispose();
  return out;
}

function argmax(m) {
  let best = -1;
  let bp = -1;
  for (const [t, v] of m) if (v > bp) [best, bp] = [t, v];
  return best;
}

const started = performance.now();
const ref = await distributions(refFile);
const got = await distributions(modelFile);
let kl = 0;
let top1 = 0;
let minEntries = Infinity;
for (let i = 0; i < ref.length; i++) {
  const p = ref[i];
  const q = got[i];
  minEntries = Math.min(minEntries, p.size, q.size);
  let sum = 0;
  for (const [t, pt] of p) if (pt > 0) sum += pt * (Math.log(pt) - Math.log(Math.max(q.get(t) ?? 0, 1e-30)));
  kl += sum;
  if (argmax(p) === argmax(q)) top1++;
}
process.stdout.write(`${JSON.stringify({ kl: kl / ref.length, top1: top1 / ref.length, positions: ref.length, vocab_entries: minEntries, seconds: (performance.now() - started) / 1000 })}\n`);
