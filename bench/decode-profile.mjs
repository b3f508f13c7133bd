// Where one decode step's time goes: wall time of each token against the time inside ONNX
// Runtime's session.run (the rest is JS: feeds, sampling, the text stream), and with --ort-profile
// ORT's own per-node trace of the decode session summed by op type (and the largest nodes).
//
//   npm run build && node bench/decode-profile.mjs [--model smollm2-135m-shape] [--bits 0|4]
//     [--threads 1] [--prompt 128] [--new 32] [--ort-profile] [--grown-cache]
//
// --bits 4 quantizes the random-weight model with RTN (symmetric, groups of 32) as bench/decode.mjs does.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, parseFlags, root } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models" },
    bits: { type: "int", default: 4, help: "0 = float32, 4 = RTN 4-bit g32 symmetric" },
    threads: { type: "int", default: 1, help: "intra-op threads" },
    prompt: { type: "int", default: 128, help: "prompt tokens" },
    new: { type: "int", default: 32, help: "new tokens" },
    "ort-profile": { type: "bool", default: false, help: "ORT per-node profile of the decode session" },
    "grown-cache": { type: "bool", default: false, help: "every step returns the whole present K/V cache (the generator's fixedCache off)" },
    "head-bits": { type: "int", default: 0, help: "a quantized model's embedding/LM head: 4, 8, 32 = float, 0 = generate's default" },
  },
  "node bench/decode-profile.mjs — one decode step: session.run against JS, and ORT's per-node profile",
);
ensureBuilt();
const dist = (m) => import(path.join(root, "dist", m));
const work = path.join(os.tmpdir(), "slimtune-decode-profile");
fs.mkdirSync(work, { recursive: true });

const { CompiledGraph } = await dist("engine/runtime.js");
const { Generator } = await dist("eval/generate.js");
const { generationScoring } = await dist("export/deploy.js");
const { loadBase } = await dist("models/load.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { Rng } = await dist("core/rng.js");

const dir = await cachedDecodeFolder(flags.model, work, flags.bits, { stdio: "inherit" });

// Time inside session.run, per call, by wrapping the compiled graph's session once it exists.
const runs = [];
const run = CompiledGraph.prototype.run;
CompiledGraph.prototype.run = async function (feeds, outputs) {
  const s = this.session;
  if (!s.__timed) {
    const inner = s.run.bind(s);
    s.run = async (...a) => {
      const t = performance.now();
      const r = await inner(...a);
      runs.at(-1).ort = performance.now() - t;
      return r;
    };
    s.__timed = true;
  }
  runs.push({ ort: 0 });
  const t = performance.now();
  const r = await run.call(this, feeds, outputs);
  runs.at(-1).total = performance.now() - t;
  return r;
};

const prefix = path.join(work, `ort-${flags.model}-${flags.bits}`);
const { withQuantizedHead } = await dist("eval/head-tables.js");
const headBits = { 0: undefined, 4: 4, 8: 8, 32: "float" }[flags["head-bits"]]; // 0: withQuantizedHead's default, as generate
const { base, head } = withQuantizedHead(loadBase(dir), headBits);
console.log(`embedding/LM head: ${head}`);
const model = generationScoring(base);
const tokenizer = await loadTokenizer(dir);
const session = { threads: flags.threads, ...(flags["ort-profile"] ? { profilePrefix: prefix } : {}) };
let t = performance.now();
const generator = await Generator.create(model, tokenizer, session, { fixedCache: !flags["grown-cache"] });
const buildS = (performance.now() - t) / 1000;
const rng = new Rng(7);
const ids = Array.from({ length: flags.prompt }, () => 256 + rng.int(40_000));
t = performance.now();
const result = await generator.generate(ids, { maxNewTokens: flags.new, temperature: 0, eosTokenIds: [] });
const genMs = performance.now() - t;
await generator.release();

const stepRuns = runs.slice(1);
const sum = (xs) => xs.reduce((a, b) => a + b, 0);
const perTokenWall = (result.decodeSeconds * 1000) / stepRuns.length;
const ortMs = sum(stepRuns.map((r) => r.ort)) / stepRuns.length;
const runMs = sum(stepRuns.map((r) => r.total)) / stepRuns.length;
console.log(`${flags.model} ${flags.bits ? "4-bit" : "float32"}, ${flags.threads} thread(s): build ${buildS.toFixed(1)} s, generate ${(genMs / 1000).toFixed(2)} s`);
console.log(`prefill ${result.prefillTokensPerS.toFixed(0)} tok/s; decode ${result.decodeTokensPerS.toFixed(1)} tok/s`);
console.log(`per decode token: ${perTokenWall.toFixed(2)} ms wall, ${runMs.toFixed(2)} ms in CompiledGraph.run, ${ortMs.toFixed(2)} ms in session.run (${((100 * ortMs) / perTokenWall).toFixed(0)} %), ${((1000 * result.decodeCpuSeconds) / stepRuns.length).toFixed(2)} CPU ms`);
console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
console.log(`greedy ids: ${result.ids.join(",")}`);

if (flags["ort-profile"]) {
  const files = fs.readdirSync(work).filter((f) => f.startsWith(path.basename(prefix)) && f.endsWith(".json"));
  // One session runs prefill and decode: its first model_run is the prefill, left out here.
  const trace = JSON.parse(fs.readFileSync(path.join(work, files[0]), "utf8"));
  const modelRuns = trace.filter((e) => e.cat === "Session" && e.name === "model_run").sort((a, b) => a.ts - b.ts);
  const prefillEnd = modelRuns[0].ts + modelRuns[0].dur;
  const decodeRuns = modelRuns.slice(1);
  const steps = decodeRuns.length;
  const nodes = trace.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts > prefillEnd);
  const byOp = new Map();
  const byNode = new Map();
  for (const e of nodes) {
    byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + e.dur);
    byNode.set(e.name, (byNode.get(e.name) ?? 0) + e.dur);
  }
  const modelRun = sum(decodeRuns.map((e) => e.dur)) / steps / 1000;
  const kernels = sum([...byOp.values()]) / steps / 1000;
  console.log(`ORT trace of the decode session: ${steps} runs, model_run ${modelRun.toFixed(2)} ms, kernels ${kernels.toFixed(2)} ms per run`);
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${op.padEnd(28)} ${(us / steps / 1000).toFixed(3)} ms  ${((100 * us) / steps / 1000 / kernels).toFixed(1)} %`);
  console.log("largest nodes:");
  for (const [n, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${n.padEnd(50)} ${(us / steps / 1000).toFixed(3)} ms`);
  for (const f of files) fs.rmSync(path.join(work, f));
}
