#!/usr/bin/env node
// GPTQ of a whole model through the CLI, end to end (calibration forward, Hessians, every block,
// the checkpoint written): wall and CPU time and the process's peak RSS. bench/quantize.mjs times
// one block against the PyTorch peer; this answers the other question, whether a 0.5 B
// model quantizes within the machine's memory, and how long the whole run takes.
//
//   npx tsc -p tsconfig.build.json && node bench/gptq-whole-model.mjs
//   node bench/gptq-whole-model.mjs --models qwen2.5-0.5b-shape --calib-samples 128 --threads 2
//
// The shapes get seeded random weights and a byte-level tokenizer (bench/lib/decode-models.mjs), so
// quality is meaningless here; time and memory are not. Writes bench/results/gptq-whole-model.json.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";
import { modelFolder } from "./lib/decode-models.mjs";

const usage = "node bench/gptq-whole-model.mjs [--models a,b] [--calib-samples N] [--calib-seq N] [--threads N] [--out FILE]";
const flags = H.parseFlags(
  process.argv.slice(2),
  {
    models: { type: "list", default: ["qwen2.5-0.5b-shape"], help: "shapes in shared/models (random weights) or ref-llama-5m" },
    "calib-samples": { type: "int", default: 128, help: "calibration windows" },
    "calib-seq": { type: "int", default: 256, help: "tokens per window" },
    threads: { type: "int", default: 2, help: "ORT threads" },
    out: { type: "string", default: path.join(H.root, "bench/results/gptq-whole-model.json"), help: "results JSON" },
  },
  usage,
);
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-gptq-whole-"));
const rows = [];
try {
  for (const name of flags.models) {
    H.log(`${name}: writing the model folder`);
    const dir = await modelFolder(name, work);
    const out = path.join(work, `${name}-gptq4`);
    const args = ["dist/cli/main.js", "quantize", "--model", dir, "--method", "gptq", "--bits", "4", "--group-size", "128", "--calib", H.wikiValid, "--calib-samples", String(flags["calib-samples"]), "--calib-seq", String(flags["calib-seq"]), "--threads", String(flags.threads), "--out", out, "--json"];
    H.log(`${name}: ${H.cliCommand(args.slice(1))}`);
    const run = await H.runTimed(process.execPath, args);
    if (run.code !== 0) throw new Error(`${name}: quantize exited with ${run.code}: ${run.stderr.trim().split("\n").pop()}`);
    const json = JSON.parse(run.stdout.trim().split("\n").pop());
    const row = {
      model: name, calib_samples: flags["calib-samples"], calib_seq: flags["calib-seq"], threads: flags.threads,
      wall_s: Math.round(run.wallS), cpu_s: Math.round(run.userS + run.sysS), peak_rss_mib: Math.round(run.maxRssMb),
      other_cpu_pct: Math.round(100 * run.otherCpu), parameters: json.parameters ?? null, file_bytes: json.fileBytes ?? json.bytes ?? null,
    };
    rows.push(row);
    H.log(`${name}: ${row.wall_s} s wall, ${row.cpu_s} CPU s, peak RSS ${row.peak_rss_mib} MiB (other processes ${row.other_cpu_pct} % of the CPU)`);
    fs.rmSync(out, { recursive: true, force: true });
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
fs.mkdirSync(path.dirname(flags.out), { recursive: true });
fs.writeFileSync(flags.out, JSON.stringify({ date: new Date().toISOString(), cpus: os.cpus().length, rows }, null, 2) + "\n");
console.log(JSON.stringify(rows));
