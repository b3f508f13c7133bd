// Where generation's peak memory comes from: resident and peak RSS after each stage of
// `slimtune generate` on a model folder — load, embedding/LM head tables, the graph, its
// serialization (ONNX bytes, or the external-data file), the constants let go, the ORT session, the
// first token, a greedy run — by wrapping the stages the CLI calls. Options switch the levers one by
// one; --variants runs several settings as separate processes, alternating, and prints peak RSS
// (from /usr/bin/time) and decode CPU ms per token beside the first variant's, with the share of the
// CPU other processes took meanwhile.
//
//   npm run build && node bench/decode-memory.mjs [--model smollm2-135m-shape] [--bits 0|4] [--new 16] [--threads 1]
//     [--file 0|1] [--release 0|1] [--release-constants 0|1] [--prepack 0|1] [--arena 0|1] [--streamed 0|1] [--gc-probe 0|1]
//   node bench/decode-memory.mjs --bits 0 --new 64 --variants "file=0,release-constants=0;file=1;file=1,prepack=0" --rounds 3 --out bench/results/NAME

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { fileURLToPath } from "node:url";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, fmt, log, mdTable, median, parseFlags, root, runTimed, setLogFile, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models" },
    bits: { type: "int", default: 4, help: "0 = float32, 4 = RTN 4-bit g32 symmetric" },
    new: { type: "int", default: 16, help: "new tokens" },
    "head-bits": { type: "int", default: 4, help: "a quantized model's embedding/LM head: 4, 8, 32 = float" },
    threads: { type: "int", default: 1, help: "ORT intra-op threads" },
    file: { type: "int", default: 1, help: "1 = the session from an ONNX file with external data (SessionOptions.weightsFile, as generate does); 0 = from in-memory ONNX bytes" },
    release: { type: "int", default: 1, help: "1 = hand the model over (GeneratorOptions.releaseHostCodes, as generate/chat do), 0 = keep it" },
    "release-constants": { type: "int", default: -1, help: "override SessionOptions.releaseConstants (0/1; default: as --release)" },
    prepack: { type: "int", default: 1, help: "0 = session.disable_prepacking" },
    arena: { type: "int", default: 1, help: "ORT's CPU memory arena: 1 on (the default session option), 0 off" },
    streamed: { type: "int", default: 1, help: "1 = the head's tables built from the file block by block (generate since session 28); 0 = from the loaded float tensors" },
    "gc-probe": { type: "int", default: 0, help: "1 = a full collection after loading, to show what is live (changes the run)" },
    variants: { type: "string", default: "", help: "A/B mode: settings separated by ';', each 'flag=value,…' (e.g. \"file=0;file=1\")" },
    rounds: { type: "int", default: 3, help: "A/B mode: rounds; each runs every variant once, in turn" },
    out: { type: "string", default: "", help: "A/B mode: write OUT.json and OUT.log" },
  },
  "node bench/decode-memory.mjs — resident and peak memory after each stage of generate",
);
ensureBuilt();
if (flags.variants) {
  await compareVariants();
  process.exit(0);
}
const dist = (m) => import(path.join(root, "dist", m));
const work = path.join(os.tmpdir(), "slimtune-decode-profile");
fs.mkdirSync(work, { recursive: true });

const mib = (b) => (b / 2 ** 20).toFixed(0);
const stages = [];
const started = performance.now();
function mark(stage) {
  const rss = process.memoryUsage().rss;
  const peak = process.resourceUsage().maxRSS * 1024;
  const s = (performance.now() - started) / 1000;
  stages.push({ stage, rss_mib: Number(mib(rss)), peak_mib: Number(mib(peak)), s: Number(s.toFixed(2)) });
  console.log(`${stage.padEnd(34)} rss ${mib(rss).padStart(5)} MiB   peak ${mib(peak).padStart(5)} MiB   ${s.toFixed(2).padStart(6)} s`);
}

const dir = await cachedDecodeFolder(flags.model, work, flags.bits);

const { CompiledGraph } = await dist("engine/runtime.js");
const onnx = await dist("engine/onnx-writer.js");
const { Generator } = await dist("eval/generate.js");
const { generationScoring } = await dist("export/deploy.js");
const { loadBase } = await dist("models/load.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { loadWithQuantizedHead, withQuantizedHead } = await dist("eval/head-tables.js");
const { Rng } = await dist("core/rng.js");

mark("modules loaded");
const headBits = { 4: 4, 8: 8, 32: "float" }[flags["head-bits"]] ?? 4;
// As the CLI does: the tables built from the file (--streamed 1), or, as before session 28's loading
// change, quantized from the loaded float tensors, which nothing keeps beside the model with its tables.
const { base, head } = flags.streamed === 1 ? loadWithQuantizedHead(dir, headBits) : withQuantizedHead(loadBase(dir), headBits);
mark(`loaded, head: ${head.split(" (")[0]}${flags.streamed === 1 ? " (streamed)" : ""}`);
if (flags["gc-probe"] === 1) {
  // What is live rather than garbage not yet collected (a diagnostic; generate itself does not collect here).
  v8.setFlagsFromString("--expose-gc");
  vm.runInNewContext("gc")();
  mark("  after a full collection");
}
const model = generationScoring(base);
const tokenizer = await loadTokenizer(dir);

// The session is created inside CompiledGraph.compile, right after the graph is written as bytes.
const compile = CompiledGraph.compile;
CompiledGraph.compile = async function (graph, outputs, opts) {
  mark(`graph built (${graph.nodes.length} nodes)`);
  const r = await compile.call(this, graph, outputs, { ...opts, trace: (stage) => mark(`  ${stage}`) });
  mark(`compiled (${mib(r.onnxBytes)} MiB of ONNX)`);
  return r;
};
void onnx;
const session = {
  threads: flags.threads,
  memoryArena: flags.arena === 1,
  weightsFile: flags.file === 1,
  ...(flags["release-constants"] >= 0 ? { releaseConstants: flags["release-constants"] === 1 } : {}),
  ...(flags.prepack === 0 ? { config: { "session.disable_prepacking": "1" } } : {}),
};
const generator = await Generator.create(model, tokenizer, session, { releaseHostCodes: flags.release === 1 });
mark("generator ready");
const rng = new Rng(7);
const ids = Array.from({ length: 128 }, () => 256 + rng.int(40_000));
const first = await generator.generate(ids, { maxNewTokens: 1, temperature: 0, eosTokenIds: [] });
mark(`first token (prefill ${first.prefillSeconds.toFixed(2)} s)`);
const r = await generator.generate(ids, { maxNewTokens: flags.new, temperature: 0, eosTokenIds: [] });
const cpuMsPerToken = (1000 * r.decodeCpuSeconds) / (r.ids.length - 1);
mark(`generated ${r.ids.length} tokens (${r.decodeTokensPerS.toFixed(1)} tok/s, ${cpuMsPerToken.toFixed(1)} CPU ms/token)`);
await generator.release();
const options = { streamed: flags.streamed, file: flags.file, release: flags.release, releaseConstants: flags["release-constants"], prepack: flags.prepack, arena: flags.arena, threads: flags.threads };
console.log(JSON.stringify({ model: flags.model, bits: flags.bits, head, release: flags.release === 1, options, decode_tokens_per_s: r.decodeTokensPerS, decode_cpu_ms_per_token: cpuMsPerToken, ids: r.ids, stages }));

/** Runs each variant as its own process, alternating over the rounds; medians per variant, ratios to the first. */
async function compareVariants() {
  if (flags.out) setLogFile(`${flags.out}.log`);
  const self = fileURLToPath(import.meta.url);
  const common = ["--model", flags.model, "--bits", String(flags.bits), "--new", String(flags.new), "--threads", String(flags.threads), "--head-bits", String(flags["head-bits"])];
  const variants = flags.variants.split(";").map((v) => v.trim()).filter(Boolean);
  const args = (v) => v.split(",").flatMap((kv) => {
    const [k, value] = kv.split("=");
    return [`--${k.trim()}`, value.trim()];
  });
  const runs = variants.map(() => []);
  for (let round = 0; round < flags.rounds; round++) {
    for (const [i, v] of variants.entries()) {
      const r = await runTimed(process.execPath, [self, ...common, ...args(v)], { echoPrefix: null });
      const json = JSON.parse(r.stdout.trim().split("\n").reverse().find((l) => l.startsWith("{")) ?? "null");
      if (r.code !== 0 || !json) throw new Error(`variant "${v}" failed: ${r.stderr.slice(-400)}`);
      const run = { variant: v, round, peak_rss_mib: r.maxRssMb, decode_cpu_ms_per_token: json.decode_cpu_ms_per_token, decode_tokens_per_s: json.decode_tokens_per_s, other_cpu: r.otherCpu, ids: json.ids, stages: json.stages };
      runs[i].push(run);
      log(`round ${round + 1} ${v.padEnd(40)} peak ${fmt.f(run.peak_rss_mib, 0)} MiB, ${fmt.f(run.decode_cpu_ms_per_token, 1)} CPU ms/token, ${fmt.f(run.decode_tokens_per_s, 1)} tok/s, other processes ${fmt.pct(run.other_cpu, 0)}`);
    }
  }
  const summary = variants.map((v, i) => ({
    variant: v,
    peak_rss_mib: median(runs[i].map((r) => r.peak_rss_mib)),
    decode_cpu_ms_per_token: median(runs[i].map((r) => r.decode_cpu_ms_per_token)),
    decode_tokens_per_s: median(runs[i].map((r) => r.decode_tokens_per_s)),
    other_cpu: median(runs[i].map((r) => r.other_cpu)),
    same_tokens_as_first: runs[i].every((r) => JSON.stringify(r.ids) === JSON.stringify(runs[0][0].ids)),
  }));
  const [first] = summary;
  log(`\n${flags.model}, ${flags.bits === 0 ? "float32" : `${flags.bits}-bit`}, ${flags.threads} thread(s), ${flags.new} new tokens after 128 prompt tokens; medians of ${flags.rounds} alternating rounds`);
  log(mdTable(
    ["variant", "peak RSS MiB", "vs first", "decode CPU ms/token", "speed vs first (CPU)", "decode tok/s", "same tokens", "other CPU"],
    summary.map((s) => [s.variant, fmt.f(s.peak_rss_mib, 0), fmt.x(s.peak_rss_mib / first.peak_rss_mib), fmt.f(s.decode_cpu_ms_per_token, 1), fmt.x(first.decode_cpu_ms_per_token / s.decode_cpu_ms_per_token), fmt.f(s.decode_tokens_per_s, 1), s.same_tokens_as_first ? "yes" : "no", fmt.pct(s.other_cpu, 0)]),
  ));
  if (flags.out) writeJson(`${flags.out}.json`, { model: flags.model, bits: flags.bits, threads: flags.threads, new: flags.new, rounds: flags.rounds, summary, runs });
}
