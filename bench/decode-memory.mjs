// Where generation's peak memory comes from: resident and peak RSS after each stage of
// `slimtune generate` on a model folder — load, embedding/LM head tables, the graph and its ONNX
// bytes, the ORT session, a short greedy run — by wrapping the stages the CLI calls.
//
//   npm run build && node bench/decode-memory.mjs [--model smollm2-135m-shape] [--bits 0|4] [--new 16] [--release 0|1] [--arena 0|1]
//     [--file 0|1] [--release-constants 0|1] [--prepack 0|1] [--threads 1]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, parseFlags, root } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models" },
    bits: { type: "int", default: 4, help: "0 = float32, 4 = RTN 4-bit g32 symmetric" },
    new: { type: "int", default: 16, help: "new tokens" },
    "head-bits": { type: "int", default: 4, help: "a quantized model's embedding/LM head: 4, 8, 32 = float" },
    arena: { type: "int", default: 1, help: "ORT's CPU memory arena: 1 on (the default session option), 0 off" },
    file: { type: "int", default: 0, help: "1 = the session from an ONNX file with external data (SessionOptions.weightsFile)" },
    "release-constants": { type: "int", default: 0, help: "1 = detach the graph's constants once serialized (SessionOptions.releaseConstants)" },
    prepack: { type: "int", default: 1, help: "0 = session.disable_prepacking" },
    threads: { type: "int", default: 1, help: "ORT intra-op threads" },
    "gc-probe": { type: "int", default: 0, help: "1 = a full collection after loading, to show what is live (changes the run)" },
    release: { type: "int", default: 1, help: "1 = free the host codes before the session is created (as generate/chat do), 0 = keep them" },
  },
  "node bench/decode-memory.mjs — resident and peak memory after each stage of generate",
);
ensureBuilt();
const dist = (m) => import(path.join(root, "dist", m));
const work = path.join(os.tmpdir(), "slimtune-decode-profile");
fs.mkdirSync(work, { recursive: true });

const mib = (b) => (b / 2 ** 20).toFixed(0);
const stages = [];
function mark(stage) {
  const rss = process.memoryUsage().rss;
  const peak = process.resourceUsage().maxRSS * 1024;
  stages.push({ stage, rss_mib: Number(mib(rss)), peak_mib: Number(mib(peak)) });
  console.log(`${stage.padEnd(34)} rss ${mib(rss).padStart(5)} MiB   peak ${mib(peak).padStart(5)} MiB`);
}

const dir = await cachedDecodeFolder(flags.model, work, flags.bits);

const { CompiledGraph } = await dist("engine/runtime.js");
const onnx = await dist("engine/onnx-writer.js");
const { Generator } = await dist("eval/generate.js");
const { generationScoring } = await dist("export/deploy.js");
const { loadBase } = await dist("models/load.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { withQuantizedHead } = await dist("eval/head-tables.js");
const { Rng } = await dist("core/rng.js");

mark("modules loaded");
// As the CLI does: nothing keeps the loaded model beside the one with its head tables.
const { base, head } = withQuantizedHead(loadBase(dir), { 4: 4, 8: 8, 32: "float" }[flags["head-bits"]] ?? 4);
mark(`head: ${head.split(" (")[0]}`);
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
  ...(flags.file === 1 ? { weightsFile: true } : {}),
  ...(flags["release-constants"] === 1 ? { releaseConstants: true } : {}),
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
const options = { file: flags.file, releaseConstants: flags["release-constants"], prepack: flags.prepack, arena: flags.arena, threads: flags.threads };
console.log(JSON.stringify({ model: flags.model, bits: flags.bits, head, release: flags.release === 1, options, decode_tokens_per_s: r.decodeTokensPerS, decode_cpu_ms_per_token: cpuMsPerToken, ids: r.ids, stages }));
