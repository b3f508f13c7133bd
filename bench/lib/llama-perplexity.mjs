// llama.cpp's perplexity of a GGUF file through node-llama-cpp, by slimtune's protocol (eval/perplexity.ts):
// the first N WikiText-2 test tokens (tokenized by slimtune, fed as ids), non-overlapping windows of
// `ctx`, each predicting its tokens 2..L. Prints one JSON line.
//
//   node bench/lib/llama-perplexity.mjs FILE.gguf --tokens 65536 --ctx 256

import path from "node:path";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { baseModel, root, wikiTest } from "./harness.mjs";

const [file, ...rest] = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const maxTokens = Number(flag("tokens", "65536"));
const ctx = Number(flag("ctx", "256"));
const { loadTokenizer } = await import(path.join(root, "dist/formats/tokenizer.js"));
const { tokenizeFile } = await import(path.join(root, "dist/data/text-file.js"));
const tokens = tokenizeFile(wikiTest, await loadTokenizer(baseModel), maxTokens);

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
const context = await model.createContext({ contextSize: ctx, batchSize: ctx, threads: 1 });
const sequence = context.getSequence();
const started = performance.now();
let nll = 0;
let n = 0;
for (let s = 0; s + 1 < tokens.length; s += ctx) {
  const w = Array.from(tokens.subarray(s, Math.min(s + ctx, tokens.length)));
  if (w.length < 2) break;
  await sequence.clearHistory();
  const res = await sequence.controlledEvaluate(w.map((t, i) => (i < w.length - 1 ? [t, { generateNext: { probabilities: true } }] : t)));
  for (let i = 0; i < w.length - 1; i++) {
    nll -= Math.log(res[i].next.probabilities.get(w[i + 1]) ?? 0);
    n++;
  }
}
process.stdout.write(`${JSON.stringify({ perplexity: Math.exp(nll / n), tokens: n, seconds: (performance.now() - started) / 1000 })}\n`);
await context.dispose();
await model.dispose();
