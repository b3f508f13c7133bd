// Generation speed of `slimtune generate` against llama.cpp (node-llama-cpp's prebuilt CPU build)
// on the same weights, in the same run, at 1 and 2 threads: prefill tokens/s over a prompt and
// decode tokens/s over greedy new tokens. Pairs: float32 vs GGUF F32, and slimtune's 4-bit
// (round-to-nearest, symmetric, groups of 32, MatMulNBits at accuracy level 4) vs Q4_0 written from
// the same codes. Models: ref-llama-5m (real weights, a WikiText-2 prompt) and the shapes in
// shared/models — smollm2-135m-shape, qwen2.5-0.5b-shape, llama-3.2-1b-shape (whose Llama 3 RoPE
// scaling the GGUF files carry as llama.cpp's rope_freqs.weight) — with random N(0, 0.02²) weights,
// random prompt ids and a synthetic byte-level tokenizer.
//
//   npm run build && node bench/decode.mjs [--models ref-llama-5m,smollm2-135m-shape] [--threads 1,2]
//     [--prompt 128] [--new 128] [--repeats 3] [--head-bits 4|8|float] [--weights float,4bit] [--out bench/results/decode.json]
//
// Every run is its own process (peak RSS its own); each pair runs interleaved, repeats take the
// median, and the CPU share other processes took during each run is recorded. Each side also reports
// its CPU seconds in the prefill and the decode: on a machine other processes share, wall time counts
// their turns too, so the ratios per CPU second (work per token) are printed beside the wall ones.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { modelFolder } from "./lib/decode-models.mjs";
import { cli, ensureBuilt, log, machineInfo, mdTable, median, parseFlags, root, runTimed, sampleLoad, setLogFile, shared, wikiTest, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    models: { type: "list", default: ["ref-llama-5m", "smollm2-135m-shape"], help: "models to run" },
    threads: { type: "list", default: ["1", "2"], help: "thread counts" },
    prompt: { type: "int", default: 128, help: "prompt tokens" },
    new: { type: "int", default: 128, help: "new tokens per run" },
    repeats: { type: "int", default: 3, help: "runs per configuration (median)" },
    weights: { type: "list", default: ["float", "4bit"], help: "pairs to run: float (float32 vs F32), 4bit (4-bit vs Q4_0); 4bit alone keeps a 1B model's float run out of memory" },
    "head-bits": { type: "string", default: "4", help: "the 4-bit model's embedding/LM head at generate (4 = as the Q4_0 file's token_embd, 8, float)" },
    out: { type: "string", default: path.join(root, "bench/results/decode.json"), help: "results JSON" },
  },
  "node bench/decode.mjs — slimtune generate vs llama.cpp, prefill and decode tokens/s",
);

ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const dist = (m) => import(path.join(root, "dist", m));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-decode-"));

async function promptIds(name, dir, n) {
  if (name === "ref-llama-5m") {
    const { loadTokenizer } = await dist("formats/tokenizer.js");
    const tok = await loadTokenizer(dir);
    return tok.encode(fs.readFileSync(wikiTest, "utf8").slice(0, 20_000)).slice(0, n);
  }
  const { Rng } = await dist("core/rng.js");
  const rng = new Rng(7);
  return Array.from({ length: n }, () => 256 + rng.int(40_000));
}

async function slimtune(dir, ids, threads, quantized) {
  const head = quantized ? ["--head-bits", flags["head-bits"]] : [];
  const { json, run } = await cli(["generate", "--model", dir, "--prompt-ids", ids.join(","), "--max-new-tokens", String(flags.new), "--ignore-eos", "--threads", String(threads), ...head]);
  return { prefill: json.prefill_tokens_per_s, decode: json.decode_tokens_per_s, prefillCpu: json.prefill_cpu_s, decodeCpu: json.decode_cpu_s, ids: json.ids, rssMb: run.maxRssMb, otherCpu: run.otherCpu, head: json.head };
}

async function llamaCpp(file, ids, threads) {
  const args = [path.join(root, "bench/lib/llama-decode.mjs"), file, "--prompt-ids", ids.join(","), "--new", String(flags.new), "--threads", String(threads)];
  log(`llama.cpp: node ${args.map((a) => (a.length > 80 ? `${a.slice(0, 40)}…` : a)).join(" ")}`);
  const run = await runTimed(process.execPath, args, { echoPrefix: null });
  if (run.code !== 0) throw new Error(`llama-decode exited with ${run.code}: ${run.stderr.slice(-500)}`);
  const json = JSON.parse(run.stdout.trim().split("\n").at(-1));
  log(`  → prefill ${json.prefill_tokens_per_s.toFixed(0)} tok/s, decode ${json.decode_tokens_per_s.toFixed(1)} tok/s`);
  return { prefill: json.prefill_tokens_per_s, decode: json.decode_tokens_per_s, prefillCpu: json.prefill_cpu_s, decodeCpu: json.decode_cpu_s, ids: json.ids, rssMb: run.maxRssMb, otherCpu: run.otherCpu };
}

const summarize = (runs) => ({
  prefill_tokens_per_s: median(runs.map((r) => r.prefill)),
  decode_tokens_per_s: median(runs.map((r) => r.decode)),
  // Work per token, which other processes' turns on the CPU do not inflate (see the header).
  prefill_cpu_s: median(runs.map((r) => r.prefillCpu)),
  decode_cpu_ms_per_token: median(runs.map((r) => (1000 * r.decodeCpu) / (flags.new - 1))),
  peak_rss_mb: Math.max(...runs.map((r) => r.rssMb)),
  other_cpu: median(runs.map((r) => r.otherCpu)),
  ids: runs[0].ids,
  ...(runs[0].head ? { head: runs[0].head } : {}),
});

const results = { machine: machineInfo(), load_at_start: await sampleLoad(3000), flags, rows: [] };
for (const name of flags.models) {
  const dir = await modelFolder(name, work);
  const q4dir = path.join(work, `${name}-q4`);
  await cli(["quantize", "--model", dir, "--bits", "4", "--group-size", "32", "--sym", "--out", q4dir], { label: `${name} 4-bit` });
  const f32 = path.join(work, `${name}-f32.gguf`);
  const q40 = path.join(work, `${name}-q4_0.gguf`);
  if (flags.weights.includes("float")) await cli(["export", "--format", "gguf", "--model", dir, "--dtype", "f32", "--out", f32], { label: `${name} GGUF F32` });
  const q = await cli(["export", "--format", "gguf", "--model", q4dir, "--dtype", "q4_0", "--out", q40], { label: `${name} GGUF Q4_0` });
  log(`Q4_0 file keeps the 4-bit model's codes in ${q.json.kept_codes} layers`);
  const ids = await promptIds(name, dir, flags.prompt);
  for (const threads of flags.threads.map(Number)) {
    const pairs = [["float", "float32 vs F32", dir, f32], ["4bit", "4-bit vs Q4_0", q4dir, q40]].filter(([key]) => flags.weights.includes(key));
    for (const [, weights, ours, theirs] of pairs) {
      const a = [];
      const b = [];
      for (let r = 0; r < flags.repeats; r++) {
        a.push(await slimtune(ours, ids, threads, ours === q4dir));
        b.push(await llamaCpp(theirs, ids, threads));
      }
      const s = summarize(a);
      const l = summarize(b);
      const agree = s.ids.findIndex((t, i) => t !== l.ids[i]);
      const row = {
        model: name,
        weights,
        threads,
        slimtune: { ...s, ids: undefined },
        llama_cpp: { ...l, ids: undefined },
        decode_ratio: s.decode_tokens_per_s / l.decode_tokens_per_s,
        prefill_ratio: s.prefill_tokens_per_s / l.prefill_tokens_per_s,
        decode_cpu_ratio: l.decode_cpu_ms_per_token / s.decode_cpu_ms_per_token,
        prefill_cpu_ratio: l.prefill_cpu_s / s.prefill_cpu_s,
        greedy_tokens_agree: agree < 0 ? s.ids.length : agree,
      };
      log(`${name} ${weights} ${threads}t: decode ${s.decode_tokens_per_s.toFixed(1)} vs ${l.decode_tokens_per_s.toFixed(1)} tok/s (${row.decode_ratio.toFixed(2)}×; per CPU second ${row.decode_cpu_ratio.toFixed(2)}×)`);
      results.rows.push(row);
      writeJson(flags.out, results);
    }
  }
}
results.load_at_end = await sampleLoad(3000);
writeJson(flags.out, results);

const f = (x, d = 0) => x.toFixed(d);
console.log(
  mdTable(
    ["model", "weights", "threads", "prefill tok/s slimtune", "prefill tok/s llama.cpp", "decode tok/s slimtune", "decode tok/s llama.cpp", "decode ratio", "decode ratio per CPU s", "prefill ratio per CPU s", "peak RSS MiB (slimtune / llama.cpp)", "greedy tokens equal", "other CPU"],
    results.rows.map((r) => [
      r.model,
      r.weights,
      r.threads,
      f(r.slimtune.prefill_tokens_per_s),
      f(r.llama_cpp.prefill_tokens_per_s),
      f(r.slimtune.decode_tokens_per_s, 1),
      f(r.llama_cpp.decode_tokens_per_s, 1),
      `${f(r.decode_ratio, 2)}×`,
      `${f(r.decode_cpu_ratio, 2)}×`,
      `${f(r.prefill_cpu_ratio, 2)}×`,
      `${f(r.slimtune.peak_rss_mb)} / ${f(r.llama_cpp.peak_rss_mb)}`,
      `${r.greedy_tokens_agree} / ${flags.new}`,
      `${f(100 * Math.max(r.slimtune.other_cpu, r.llama_cpp.other_cpu))} %`,
    ]),
  ),
);
fs.rmSync(work, { recursive: true, force: true });
