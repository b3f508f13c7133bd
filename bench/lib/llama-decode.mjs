// One llama.cpp generation run through node-llama-cpp (its prebuilt CPU build), for bench/decode.mjs:
// prefill the prompt ids, then greedy-decode N tokens one at a time; prints one JSON line with
// prefill and decode tokens/s and the process's CPU seconds in each, measured the way
// `slimtune generate --json` measures them.
//
//   node bench/lib/llama-decode.mjs FILE.gguf --prompt-ids 1,2,3 --new 128 --threads 1

import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [file, ...rest] = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : fallback;
};
const prompt = flag("prompt-ids").split(",").map(Number);
const newTokens = Number(flag("new", "128"));
const threads = Number(flag("threads", "1"));

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
const context = await model.createContext({ contextSize: prompt.length + newTokens + 8, batchSize: Math.max(512, prompt.length), threads });
const sequence = context.getSequence();

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
let started = performance.now();
let cpuStarted = cpuSeconds();
const ids = [];
let prefillSeconds = 0;
let prefillCpuSeconds = 0;
// One evaluation that feeds each greedy token back (llama.cpp's own loop); the first token's wait is the prefill.
for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
  if (ids.length === 0) {
    prefillSeconds = (performance.now() - started) / 1000;
    prefillCpuSeconds = cpuSeconds() - cpuStarted;
    started = performance.now();
    cpuStarted = cpuSeconds();
  }
  ids.push(token);
  if (ids.length === newTokens) break;
}
const decodeSeconds = (performance.now() - started) / 1000;
const decodeCpuSeconds = cpuSeconds() - cpuStarted;
process.stdout.write(
  `${JSON.stringify({ ids, prefill_tokens_per_s: prompt.length / prefillSeconds, decode_tokens_per_s: (newTokens - 1) / decodeSeconds, prefill_cpu_s: prefillCpuSeconds, decode_cpu_s: decodeCpuSeconds, peak_rss_mb: process.resourceUsage().maxRSS / 1024 })}\n`,
);
await context.dispose();
await model.dispose();
