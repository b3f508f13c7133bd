#!/usr/bin/env node
// Below-4-bit experiment (docs/results/low-bit.md) on ref-llama-5m: calibration from WikiText-2
// valid, judged on the first 65,536 WikiText-2 test tokens against the float model.
//
//   Phase "notrain": RTN, GPTQ (± act-order), NF4, LQ-LoRA init and ReALLM at ≈ 4, 3 and 2 bits per
//   weight — KL(float ‖ model), top-1 agreement, perplexity, bits per weight with all storage counted
//   (codes, scales, zeros, g_idx, codebooks, low-rank factors, permutations; a PEFT adapter's bytes
//   for LQ-LoRA) and bytes on disk.
//   Phase "tune": the same fine-tuning budget on WikiText-2 valid for QLoRA (RTN and NF4 bases),
//   LQ-LoRA, ReALLM and PEQA at 3 and 2 bits — test perplexity (and KL), trainable parameters,
//   tokens/s and peak RSS, with the PyTorch peer where it has the method.
//
//   npx tsc -p tsconfig.build.json
//   node bench/low-bit-experiment.mjs --phase notrain            # resumable: rows already in --out are kept
//   node bench/low-bit-experiment.mjs --phase tune
//   node bench/low-bit-experiment.mjs --render > tables.md       # markdown tables from --out
//
// Every step is its own `node dist/cli/main.js … --json` process (bench/lib/harness.mjs).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const USAGE = "node bench/low-bit-experiment.mjs --phase notrain|tune [--rows a,b] [--render]";
const SPEC = {
  phase: { type: "string", default: "notrain", help: "notrain or tune" },
  rows: { type: "list", default: null, help: "only these rows (default: every row of the phase); --list shows them" },
  list: { type: "bool", default: false, help: "list the rows and exit" },
  render: { type: "bool", default: false, help: "print the markdown tables from --out and exit" },
  redo: { type: "bool", default: false, help: "re-run rows already in --out" },
  "eval-tokens": { type: "int", default: 65536, help: "test tokens scored (KL and perplexity)" },
  ctx: { type: "int", default: 256, help: "eval window" },
  "calib-samples": { type: "int", default: 128, help: "calibration windows (GPTQ)" },
  "calib-seq": { type: "int", default: 256, help: "calibration window length" },
  steps: { type: "int", default: 150, help: "fine-tuning steps of every tuned row" },
  batch: { type: "int", default: 8, help: "sequences per step" },
  seq: { type: "int", default: 256, help: "tokens per sequence" },
  "lr-lora": { type: "float", default: 1e-3, help: "QLoRA / LQ-LoRA / ReALLM learning rate" },
  "lr-peqa": { type: "float", default: 2e-3, help: "PEQA learning rate" },
  "block-steps": { type: "int", default: 50, help: "ReALLM block-wise steps per block before end-to-end tuning" },
  "no-peer": { type: "bool", default: false, help: "skip the PyTorch peer" },
  "max-wait": { type: "int", default: 60, help: "seconds to wait for a quiet machine before each timed run" },
  threads: { type: "int", default: 0, help: "ORT threads (0: all cores)" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-low-bit"), help: "scratch folder for models" },
  out: { type: "string", default: path.join(H.root, "bench/results/low-bit.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, USAGE);
const valid = H.wikiValid;
const test = H.wikiTest;
const calib = ["--calib", valid, "--calib-samples", String(a["calib-samples"]), "--calib-seq", String(a["calib-seq"])];

// ---------------------------------------------------------------------------------------------
// rows

const groupLabel = (g) => (g === "channel" ? "per channel" : `g${g}`);
const gflag = (g) => ["--group-size", g === "channel" ? "channel" : String(g)];

/** No-training rows: id → quantize flags. */
const NOTRAIN = [];
for (const bits of [4, 3, 2]) {
  for (const g of ["channel", 64, 32]) {
    NOTRAIN.push({ id: `rtn${bits}-${g}`, family: "RTN", label: `RTN ${bits}-bit ${groupLabel(g)}`, args: ["--bits", String(bits), ...gflag(g)] });
    NOTRAIN.push({ id: `gptq${bits}-${g}`, family: "GPTQ", label: `GPTQ ${bits}-bit ${groupLabel(g)}`, args: ["--method", "gptq", ...calib, "--bits", String(bits), ...gflag(g)] });
    NOTRAIN.push({ id: `gptq${bits}-${g}-ao`, family: "GPTQ act-order", label: `GPTQ ${bits}-bit ${groupLabel(g)} act-order`, args: ["--method", "gptq", ...calib, "--act-order", "--bits", String(bits), ...gflag(g)] });
  }
}
NOTRAIN.push({ id: "nf4-64", family: "NF4", label: "NF4 g64", args: ["--scheme", "nf4"] });
for (const [bits, g] of [[4, 64], [3, 64], [2, 64]]) {
  NOTRAIN.push({ id: `lqlora-rtn${bits}`, family: "LQ-LoRA init", label: `LQ-LoRA init, RTN ${bits}-bit g${g} + r 16`, args: ["--method", "lqlora", "--bits", String(bits), ...gflag(g), "--rank", "16"] });
}
NOTRAIN.push({ id: "lqlora-nf4", family: "LQ-LoRA init", label: "LQ-LoRA init, NF4 g64 + r 16", args: ["--method", "lqlora", "--scheme", "nf4", "--rank", "16"] });
for (const bpw of [4, 3, 2]) {
  NOTRAIN.push({ id: `reallm-${bpw}`, family: "ReALLM", label: `ReALLM ≤ ${bpw} bits/weight`, args: ["--method", "reallm", "--bits-per-weight", String(bpw)] });
}

/** Tuned rows: base (a no-training row id) + finetune flags. */
const TUNE = [];
for (const bits of [3, 2]) {
  TUNE.push({ id: `qlora-rtn${bits}`, label: `QLoRA on RTN ${bits}-bit g64`, base: `rtn${bits}-64`, method: "qlora", lr: a["lr-lora"], peer: { method: "qlora", bits } });
  TUNE.push({ id: `lqlora-rtn${bits}-tuned`, label: `LQ-LoRA RTN ${bits}-bit g64 + r 16`, base: `lqlora-rtn${bits}`, method: "lqlora", lr: a["lr-lora"] });
  TUNE.push({ id: `peqa${bits}`, label: `PEQA ${bits}-bit g64`, base: `rtn${bits}-64`, method: "peqa", lr: a["lr-peqa"], peer: { method: "peqa", bits } });
  TUNE.push({ id: `reallm-${bits}-tuned`, label: `ReALLM ≤ ${bits} bits/weight`, base: `reallm-${bits}`, method: "reallm", lr: a["lr-lora"], extra: ["--block-steps", String(a["block-steps"]), "--reference", H.baseModel] });
}
TUNE.push({ id: "qlora-nf4", label: "QLoRA on NF4 g64", base: "nf4-64", method: "qlora", lr: a["lr-lora"] });
TUNE.push({ id: "lqlora-nf4-tuned", label: "LQ-LoRA NF4 g64 + r 16", base: "lqlora-nf4", method: "lqlora", lr: a["lr-lora"] });

if (a.list) {
  for (const r of [...NOTRAIN, ...TUNE]) process.stdout.write(`${r.id.padEnd(24)} ${r.label}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// results file

const results = fs.existsSync(a.out) ? JSON.parse(fs.readFileSync(a.out, "utf8")) : { notrain: {}, tune: {}, runs: [] };
results.notrain ??= {};
results.tune ??= {};
results.runs ??= [];
const save = () => H.writeJson(a.out, results);

if (a.render) {
  process.stdout.write(`${render()}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// steps

const threads = a.threads > 0 ? ["--threads", String(a.threads)] : [];
const modelDir = (id) => path.join(a.work, id);

/** Bits per weight of the quantized linears with everything they store, and bytes on disk. */
function storage(q, dir) {
  const r = q.json.report;
  const layerBytes = r.totalBytes - r.denseBytes - r.biasBytes;
  let adapterBytes = 0;
  const adapter = path.join(dir, "lqlora_adapter/adapter_model.safetensors");
  if (fs.existsSync(adapter)) adapterBytes = fs.statSync(adapter).size;
  return {
    bitsPerWeight: ((layerBytes + adapterBytes) * 8) / r.quantizedWeights,
    diskBytes: q.json.fileBytes + adapterBytes,
    adapterBytes,
  };
}

async function klEval(dir, extra = []) {
  const e = await H.cli(["eval", "--model", dir, ...extra, "--reference", H.baseModel, "--data", test, "--max-tokens", String(a["eval-tokens"]), "--ctx", String(a.ctx), ...threads], { label: "eval" });
  const j = e.json;
  return { kl: j.meanKl, klP99: j.klP99, top1: j.top1Agreement, perplexity: j.perplexity, referencePerplexity: j.referencePerplexity, tokens: j.tokens, command: e.command };
}

async function notrainRow(row) {
  const dir = modelDir(row.id);
  const q = await H.cli(["quantize", "--model", H.baseModel, "--out", dir, ...row.args, ...threads], { label: row.id });
  const extra = fs.existsSync(path.join(dir, "lqlora_adapter")) ? ["--adapter", path.join(dir, "lqlora_adapter")] : [];
  const k = await klEval(dir, extra);
  return {
    label: row.label,
    family: row.family,
    quantizeCommand: q.command,
    quantizeSeconds: q.run.wallS,
    quantizeOtherCpu: q.run.otherCpu,
    ...storage(q, dir),
    methodReport: summarizeMethod(q.json.methodReport),
    ...k,
  };
}

function summarizeMethod(m) {
  if (!m) return null;
  const out = { ...m };
  if (m.gptq) out.gptq = { seconds: m.gptq.seconds, blocks: m.gptq.blocks, calibrationTokens: m.gptq.calibrationTokens };
  return out;
}

async function tuneRow(row) {
  const base = modelDir(row.base);
  if (!fs.existsSync(base)) throw new Error(`base ${row.base} is missing: run --phase notrain --rows ${row.base} first`);
  const out = path.join(a.work, `tuned-${row.id}`);
  fs.rmSync(out, { recursive: true, force: true });
  await H.waitQuiet({ what: `${row.id} fine-tuning`, maxWaitS: a["max-wait"] });
  const args = ["finetune", "--method", row.method, "--model", base, "--data", valid, "--out", out, "--steps", String(a.steps), "--batch", String(a.batch), "--seq", String(a.seq), "--lr", String(row.lr), "--eval-every", "0", ...(row.extra ?? []), ...threads];
  const t = await H.cli(args, { label: row.id });
  const record = H.trainRecord(t, out, row.lr);
  const adapter = row.method === "reallm" ? [] : ["--adapter", out];
  const evalModel = row.method === "reallm" ? out : base;
  const k = await klEval(evalModel, adapter);
  let peer = null;
  if (row.peer && !a["no-peer"]) {
    await H.waitQuiet({ what: `${row.id} peer`, maxWaitS: a["max-wait"] });
    const p = await H.peer({ method: row.peer.method, bits: row.peer.bits, batch: a.batch, seq: a.seq, threads: 2 });
    peer = { ...p.json, command: p.command, otherCpu: p.run.otherCpu };
  }
  return { label: row.label, base: row.base, method: row.method, ...record, runOtherCpu: t.run.otherCpu, ...k, peer };
}

// ---------------------------------------------------------------------------------------------
// render

function render() {
  const f = H.fmt;
  const nt = Object.entries(results.notrain);
  const rowsOut = nt.map(([id, r]) => [r.label, f.f(r.bitsPerWeight, 3), f.int(r.diskBytes), f.f(r.kl, 5), f.pct(r.top1, 2), f.f(r.perplexity, 1), f.f(r.quantizeSeconds, 1)]);
  const t1 = H.mdTable(["row", "bits/weight (all)", "bytes on disk", "KL (nats/token)", "top-1 agreement", "perplexity", "quantize s"], rowsOut);
  const tu = Object.entries(results.tune);
  const t2 = H.mdTable(
    ["row", "base bits/weight", "test perplexity", "KL", "trainable params", "tok/s", "peak RSS MiB", "peer tok/s", "peer RSS MiB"],
    tu.map(([, r]) => [r.label, f.f(results.notrain[r.base]?.bitsPerWeight, 3), f.f(r.perplexity, 1), f.f(r.kl, 4), f.int(r.trainableParameters), f.int(r.stepTokensPerS), f.int(r.peakRssMb), r.peer ? f.int(r.peer.tokens_per_s) : "–", r.peer ? f.int(r.peer.peak_rss_mb) : "–"]),
  );
  return `### No training\n\n${t1}\n\n### After fine-tuning\n\n${t2}`;
}

// ---------------------------------------------------------------------------------------------
// main

H.ensureBuilt();
fs.mkdirSync(a.work, { recursive: true });
H.setLogFile(path.join(a.work, `low-bit-${a.phase}.log`));
const machine = H.machineInfo();
const startLoad = await H.sampleLoad(3000);
H.log(`machine: ${machine.cpu}, ${machine.cores} cores; load ${(100 * startLoad.busy).toFixed(0)} % busy; commit ${machine.commit}`);
results.runs.push({ phase: a.phase, machine, startLoad, args: a });
save();
const list = a.phase === "tune" ? TUNE : NOTRAIN;
const table = a.phase === "tune" ? results.tune : results.notrain;
for (const row of list) {
  if (a.rows && !a.rows.includes(row.id)) continue;
  if (table[row.id] && !a.redo) continue;
  try {
    table[row.id] = a.phase === "tune" ? await tuneRow(row) : await notrainRow(row);
    save();
    H.log(`${row.id}: ${JSON.stringify({ kl: table[row.id].kl, ppl: table[row.id].perplexity, bpw: table[row.id].bitsPerWeight })}`);
  } catch (err) {
    H.log(`${row.id} failed: ${err.message.split("\n").slice(0, 3).join(" | ")}`);
  }
}
results.runs[results.runs.length - 1].endLoad = await H.sampleLoad(3000);
save();
process.stdout.write(`${render()}\n`);
