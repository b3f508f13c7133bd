// The generation graph with ORT's fused kernels (GroupQueryAttention, SkipSimplifiedLayerNormalization)
// against the portable KV graph the ONNX export writes, in one process on the same weights: the two
// generators take turns over the same prompt, so both see the same load; medians of the rounds.
// Under a shared machine's load wall-clock rates swing 2× between rounds, so each round also records
// the process's CPU time: decode CPU ms per token = (CPU of a run with --new tokens − CPU of a
// prefill-only run) / (new − 1), which time-slicing by other processes does not inflate.
// --compare peqa: a PEQA method's scoring (scales as graph inputs, as the page generates while
// training) with its scales folded at build time, against the same graph with the scales fed every
// run. --compare lift: weights as initializers (ORT copies and prepacks them) against weights fed
// as inputs from the JS buffers every run (maxInitializerBytes 0: no copy inside ORT, no prepacking).
// --compare cache: the fused graph with the key/value cache in fixed-capacity buffers the generator
// keeps (a step returns only its new rows) against the grown cache (every step returns the whole
// present cache, which onnxruntime-node copies out).
// --compare build --other-dist DIR: this worktree's dist/ against another build of slimtune (e.g. a
// copy of dist/ from an earlier commit), each generator built from its own modules.
//
//   npm run build && node bench/decode-ab.mjs [--model smollm2-135m-shape] [--bits 0|4] [--threads 1]
//     [--prompt 128] [--new 32] [--rounds 5] [--compare fused|peqa|lift|cache|build] [--other-dist DIR] [--out bench/results/decode-ab.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, machineInfo, median, parseFlags, root, sampleLoad, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models" },
    bits: { type: "int", default: 4, help: "0 = float32, 4 = RTN 4-bit g32 symmetric (4-bit embedding/LM head table)" },
    threads: { type: "int", default: 1, help: "intra-op threads" },
    prompt: { type: "int", default: 128, help: "prompt tokens" },
    new: { type: "int", default: 32, help: "new tokens per round" },
    rounds: { type: "int", default: 5, help: "turns per generator (median)" },
    compare: { type: "string", default: "fused", help: "fused: fused kernels vs portable graph; peqa: PEQA scales folded vs fed as inputs (4-bit, per channel); lift: weights as initializers vs fed as inputs; cache: fixed-capacity vs grown K/V cache; build: dist/ vs --other-dist" },
    "other-dist": { type: "string", default: "", help: "with --compare build: the other build's dist folder" },
    out: { type: "string", default: path.join(root, "bench/results/decode-ab.json"), help: "results JSON" },
  },
  "node bench/decode-ab.mjs — fused vs portable generation graph (or folded vs input PEQA scales), interleaved in one process",
);
ensureBuilt();
const dist = (m) => import(path.join(root, "dist", m));
const work = path.join(os.tmpdir(), "slimtune-decode-profile");
fs.mkdirSync(work, { recursive: true });

const { Generator } = await dist("eval/generate.js");
const { generationScoring } = await dist("export/deploy.js");
const { loadBase } = await dist("models/load.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { withQuantizedHead } = await dist("eval/head-tables.js");
const { Rng } = await dist("core/rng.js");

const dir = await cachedDecodeFolder(flags.model, work, 0);
const tokenizer = await loadTokenizer(dir);
const session = { threads: flags.threads };
const load = await sampleLoad(2000);

let pair;
if (flags.compare === "peqa") {
  // PEQA tunes per-channel scales; the scoring a page generates with feeds them as graph inputs.
  const { LlamaModel } = await dist("models/llama/model.js");
  const { quantizeModel } = await dist("quant/quantize-model.js");
  const { peqaMethod } = await dist("methods/peqa/index.js");
  const { methodScoring } = await dist("methods/registry.js");
  const qm = quantizeModel(LlamaModel.load(dir), { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });
  const method = peqaMethod(qm);
  let k = 0;
  for (const p of method.trainable.values()) for (let i = 0; i < p.data.length; i++) p.data[i] *= 1 + 0.02 * Math.sin(++k);
  const scoring = methodScoring(method);
  // The scale-input graph as it ran before the fold: the same params behind a plain ParamSource,
  // which the generator does not recognise as foldable, so the scales stay inputs fed every run.
  const asInputs = {
    ...scoring,
    params: (g) => {
      const p = scoring.params(g);
      return { graph: p.graph, tensor: (n) => p.tensor(n), linear: (at, x) => p.linear(at, x) };
    },
  };
  pair = [
    ["PEQA scales folded", await Generator.create(scoring, tokenizer, session)],
    ["PEQA scales as inputs", await Generator.create(asInputs, tokenizer, session)],
  ];
} else {
  const base = flags.bits === 4 ? withQuantizedHead(loadBase(await cachedDecodeFolder(flags.model, work, 4)), 4).base : loadBase(dir);
  const model = generationScoring(base);
  // The same model through another build's modules (its classes, so its instanceof checks hold).
  const otherBuild = async () => {
    const other = (m) => import(path.resolve(flags["other-dist"], m));
    const base2 = flags.bits === 4
      ? (await other("eval/head-tables.js")).withQuantizedHead((await other("models/load.js")).loadBase(await cachedDecodeFolder(flags.model, work, 4)), 4).base
      : (await other("models/load.js")).loadBase(dir);
    const { Generator: Other } = await other("eval/generate.js");
    return Other.create((await other("export/deploy.js")).generationScoring(base2), tokenizer, session);
  };
  pair =
    flags.compare === "build"
      ? [
          ["this build", await Generator.create(model, tokenizer, session)],
          [`build ${path.basename(flags["other-dist"])}`, await otherBuild()],
        ]
      : flags.compare === "cache"
      ? [
          ["fixed K/V cache", await Generator.create(model, tokenizer, session)],
          ["grown K/V cache", await Generator.create(model, tokenizer, session, { fixedCache: false })],
        ]
      : flags.compare === "lift"
      ? [
          ["weights as initializers", await Generator.create(model, tokenizer, session)],
          ["weights fed as inputs", await Generator.create(model, tokenizer, { ...session, maxInitializerBytes: 0 })],
        ]
      : [
          ["fused kernels", await Generator.create(model, tokenizer, session)],
          ["portable graph", await Generator.create(model, tokenizer, session, { fusedKernels: false })],
        ];
}

const rng = new Rng(7);
const ids = Array.from({ length: flags.prompt }, () => 256 + rng.int(40_000));
const runs = pair.map(() => []);
const tokens = [];
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
for (let r = 0; r < flags.rounds; r++) {
  for (const [i, [, g]] of pair.entries()) {
    let t = cpuMs();
    await g.generate(ids, { maxNewTokens: 1, temperature: 0, eosTokenIds: [] });
    const prefillCpu = cpuMs() - t;
    t = cpuMs();
    const res = await g.generate(ids, { maxNewTokens: flags.new, temperature: 0, eosTokenIds: [] });
    const cpu = cpuMs() - t;
    runs[i].push({ prefill: res.prefillTokensPerS, decode: res.decodeTokensPerS, prefill_cpu_ms: prefillCpu, decode_cpu_ms_per_token: (cpu - prefillCpu) / (flags.new - 1) });
    if (r === 0) tokens.push(res.ids);
  }
}
for (const [, g] of pair) await g.release();
const rows = pair.map(([name], i) => ({
  name,
  prefill_tokens_per_s: median(runs[i].map((x) => x.prefill)),
  decode_tokens_per_s: median(runs[i].map((x) => x.decode)),
  prefill_cpu_ms: median(runs[i].map((x) => x.prefill_cpu_ms)),
  decode_cpu_ms_per_token: median(runs[i].map((x) => x.decode_cpu_ms_per_token)),
  runs: runs[i],
}));
const result = {
  machine: machineInfo(),
  load_at_start: load,
  load_at_end: await sampleLoad(2000),
  flags,
  rows,
  decode_ratio: rows[0].decode_tokens_per_s / rows[1].decode_tokens_per_s,
  prefill_ratio: rows[0].prefill_tokens_per_s / rows[1].prefill_tokens_per_s,
  decode_cpu_ratio: rows[1].decode_cpu_ms_per_token / rows[0].decode_cpu_ms_per_token,
  prefill_cpu_ratio: rows[1].prefill_cpu_ms / rows[0].prefill_cpu_ms,
  greedy_tokens_equal: tokens[0].findIndex((t, i) => t !== tokens[1][i]) < 0 ? tokens[0].length : tokens[0].findIndex((t, i) => t !== tokens[1][i]),
};
writeJson(flags.out, result);
for (const r of rows) {
  console.log(`${r.name.padEnd(22)} prefill ${r.prefill_tokens_per_s.toFixed(0).padStart(5)} tok/s (${r.prefill_cpu_ms.toFixed(0)} CPU ms)   decode ${r.decode_tokens_per_s.toFixed(1).padStart(6)} tok/s (${r.decode_cpu_ms_per_token.toFixed(2)} CPU ms/token)`);
}
console.log(`${rows[0].name} ÷ ${rows[1].name}: wall decode ${result.decode_ratio.toFixed(2)}×, prefill ${result.prefill_ratio.toFixed(2)}×; per CPU ms decode ${result.decode_cpu_ratio.toFixed(2)}×, prefill ${result.prefill_cpu_ratio.toFixed(2)}×; greedy tokens equal ${result.greedy_tokens_equal}/${flags.new}`);
