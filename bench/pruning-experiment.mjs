#!/usr/bin/env node
// Pruning experiment (docs/results/pruning.md) on ref-llama-5m:
//
// 1. Importance at 20 % and 30 %: Taylor (element-wise and vector-wise), task-gradient, L2 and random.
//    (a) no training: KL to the float model and top-1 agreement on the first --kl-tokens of
//        WikiText-2 test, for a model pruned with importance measured on WikiText-2 valid (LM loss);
//    (b) SST-2 dev accuracy after the same LoRA recovery (--steps × --batch, r 8) of a model pruned
//        with importance measured on SST-2 train (classification loss through a linear probe).
// 2. Pruning-Adapter vs LoRA vs full fine-tuning on SST-2 with the same budget: accuracy, trainable
//    parameters, training tok/s and peak RSS, served bytes and eval tok/s.
//
//   npx tsc -p tsconfig.build.json
//   node bench/pruning-experiment.mjs                     # everything (~1.5 h on a busy 2-core machine)
//   node bench/pruning-experiment.mjs --rows taylor-20,l2-20 --merge
//
// Every step is its own `node dist/cli/main.js … --json` process. Results are written after every
// row to bench/results/pruning.json; tables on stdout at the end.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const USAGE = "node bench/pruning-experiment.mjs [--rows a,b] [--steps 300] [--merge]";
const SPEC = {
  steps: { type: "int", default: 300, help: "LoRA / full / adapter steps of every SST-2 row" },
  batch: { type: "int", default: 16, help: "SST-2 examples per step" },
  "max-len": { type: "int", default: 64, help: "SST-2 tokens kept per example" },
  "lr-lora": { type: "float", default: 1e-3, help: "LoRA learning rate (also the Pruning-Adapter's)" },
  "lr-full": { type: "float", default: 1e-4, help: "full fine-tuning learning rate" },
  samples: { type: "int", default: 16, help: "calibration batches for taylor / task-gradient" },
  "kl-tokens": { type: "int", default: 65536, help: "WikiText-2 test tokens scored for KL / top-1" },
  repeats: { type: "int", default: 3, help: "eval timings per served model (median)" },
  rows: { type: "list", default: null, help: "rows to run (default: all); see --list" },
  list: { type: "bool", default: false, help: "list the rows and exit" },
  merge: { type: "bool", default: false, help: "update only the rows run in an existing --out JSON" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-pruning"), help: "scratch folder" },
  out: { type: "string", default: path.join(H.root, "bench/results/pruning.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, USAGE);

const IMPORTANCE = [
  { key: "taylor", label: "Taylor (element)", args: ["--importance", "taylor", "--taylor", "element"], data: true },
  // Vector-wise Taylor is scored without training only (KL, top-1), to keep the run within ~2 h.
  { key: "taylor-vector", label: "Taylor (vector)", args: ["--importance", "taylor", "--taylor", "vector"], data: true, klOnly: true },
  { key: "task-gradient", label: "task-gradient", args: ["--importance", "task-gradient"], data: true },
  { key: "l2", label: "L2 magnitude", args: ["--importance", "l2"], data: false },
  { key: "random", label: "random", args: ["--importance", "random"], data: false },
];
const ROWS = [
  { name: "lora", kind: "baseline", label: "LoRA r 8, unpruned" },
  { name: "full", kind: "full", label: "full fine-tuning, unpruned" },
  ...[0.2, 0.3].flatMap((ratio) => IMPORTANCE.map((imp) => ({ name: `${imp.key}-${Math.round(100 * ratio)}`, kind: "prune", ratio, imp, label: `${imp.label} ${Math.round(100 * ratio)} %` }))),
];
if (a.list) {
  for (const r of ROWS) process.stdout.write(`${r.name.padEnd(18)} ${r.label}\n`);
  process.exit(0);
}

H.ensureBuilt();
fs.mkdirSync(a.work, { recursive: true });
H.setLogFile(path.join(a.work, "pruning.log"));
const started = Date.now();
const machine = H.machineInfo();
H.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, commit ${machine.commit}${machine.srcDirty ? " (src/ dirty)" : ""}`);

const sstArgs = ["--task", "classify", "--data", H.sstTrain, "--eval-data", H.sstDev, "--steps", String(a.steps), "--batch", String(a.batch), "--max-len", String(a["max-len"]), "--warmup", "10"];

async function prune(row, calibration) {
  const out = path.join(a.work, `${row.name}-${calibration}`);
  const data =
    !row.imp.data ? [] : calibration === "lm" ? ["--task", "lm", "--data", H.wikiValid, "--batch", "8", "--seq", "128"] : ["--task", "classify", "--data", H.sstTrain, "--batch", "16", "--max-len", String(a["max-len"])];
  const r = await H.cli(["prune", "--model", H.baseModel, ...row.imp.args, "--ratio", String(row.ratio), "--samples", String(a.samples), ...data, "--out", out], { label: `prune ${row.name} (${calibration})` });
  return { out, command: r.command, seconds: r.run.wallS, report: r.json.report, calibrationLoss: r.json.calibration_loss, head: r.json.head, layers: r.json.report.layers };
}

async function kl(model) {
  const r = await H.cli(["eval", "--model", model, "--reference", H.baseModel, "--data", H.wikiTest, "--max-tokens", String(a["kl-tokens"])], { label: "KL to the float model" });
  return { meanKl: r.json.meanKl, klP99: r.json.klP99, top1: r.json.top1Agreement, perplexity: r.json.perplexity, referencePerplexity: r.json.referencePerplexity, tokens: r.json.tokens, command: r.command, otherCpu: r.run.otherCpu };
}

async function evalSpeed(model, adapter) {
  const runs = [];
  for (let i = 0; i < a.repeats; i++) {
    const r = await H.cli(["eval", "--task", "classify", "--model", model, ...(adapter ? ["--adapter", adapter] : []), "--data", H.sstDev], { label: `eval speed ${i + 1}/${a.repeats}` });
    runs.push({ tokensPerS: r.json.tokensPerSecond, accuracy: r.json.accuracy, otherCpu: r.run.otherCpu, wallS: r.run.wallS });
  }
  return { tokensPerS: H.median(runs.map((x) => x.tokensPerS)), accuracy: runs[0].accuracy, maxOtherCpu: Math.max(...runs.map((x) => x.otherCpu)), runs };
}

const servedBytes = (dir) => fs.readdirSync(dir, { recursive: true }).filter((f) => /\.safetensors$/.test(f)).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);

async function runRow(row) {
  const res = { name: row.name, label: row.label, kind: row.kind, distHash: H.distHash() };
  if (row.kind === "baseline" || row.kind === "full") {
    const out = path.join(a.work, `run-${row.name}`);
    fs.rmSync(out, { recursive: true, force: true });
    const lr = row.kind === "full" ? a["lr-full"] : a["lr-lora"];
    const method = row.kind === "full" ? ["--method", "full"] : ["--method", "lora", "--rank", "8", "--alpha", "16"];
    const r = await H.cli(["finetune", ...method, "--model", H.baseModel, "--lr", String(lr), "--eval-every", "0", "--checkpoint-every", "0", ...sstArgs, "--out", out], { label: `train ${row.name}` });
    res.train = { ...H.trainRecord(r, out, lr), otherCpu: r.run.otherCpu };
    res.accuracy = r.json.heldOutAfter.metrics.accuracy;
    res.served = row.kind === "full" ? { model: out, adapter: null, bytes: servedBytes(out) } : { model: H.baseModel, adapter: out, bytes: H.fileBytes(path.join(H.baseModel, "model.safetensors")) + servedBytes(out) };
    res.speed = await evalSpeed(res.served.model, res.served.adapter);
    return res;
  }
  // (a) LM-calibrated (or data-free) pruning: KL and top-1 without training
  res.lmPrune = await prune(row, "lm");
  res.kl = await kl(res.lmPrune.out);
  H.log(`  ${row.name}: KL ${res.kl.meanKl.toFixed(5)}, top-1 ${(100 * res.kl.top1).toFixed(2)} %, removed ${(100 * (1 - res.lmPrune.report.blockParametersAfter / res.lmPrune.report.blockParametersBefore)).toFixed(1)} % of the blocks`);
  if (row.imp.klOnly) return res;
  // (b) SST-2: prune with importance on the task, then the same LoRA recovery
  const out = path.join(a.work, `run-${row.name}`);
  fs.rmSync(out, { recursive: true, force: true });
  // Pruning-Adapter's procedure for every importance: prune with importance measured on SST-2 (L2
  // and random use no data), then LoRA on the pruned frozen model, in one command.
  const r = await H.cli(["pruning-adapter", "--model", H.baseModel, ...row.imp.args, "--ratio", String(row.ratio), "--samples", String(a.samples), "--lr", String(a["lr-lora"]), ...sstArgs, "--out", out], { label: `pruning-adapter ${row.name}` });
  res.sstPrune = { report: r.json.prune, command: r.command };
  res.train = { command: r.command, trainableParameters: r.json.training.trainableParameters, runTokensPerS: r.json.training.tokensPerSecond, stepTokensPerS: H.stepThroughput(out)?.medianTokensPerS ?? null, peakRssMb: r.json.training.peakRssMb, seconds: r.json.seconds, otherCpu: r.run.otherCpu, maxRssMb: r.run.maxRssMb };
  res.accuracy = r.json.training.heldOutAfter.metrics.accuracy;
  res.served = { model: out, adapter: path.join(out, "adapter"), bytes: servedBytes(out) };
  H.log(`  ${row.name}: SST-2 dev accuracy after LoRA ${(100 * res.accuracy).toFixed(2)} %`);
  if (row.imp.key === "task-gradient") res.speed = await evalSpeed(res.served.model, res.served.adapter);
  return res;
}

const selected = a.rows ? a.rows.map((n) => ROWS.find((r) => r.name === n) ?? (() => { throw new Error(`unknown row ${n}; --list shows them`); })()) : ROWS;
let all = a.merge && fs.existsSync(a.out) ? JSON.parse(fs.readFileSync(a.out, "utf8")).rows : [];
const save = () =>
  H.writeJson(a.out, {
    experiment: "pruning",
    machine,
    settings: { model: H.baseModel, steps: a.steps, batch: a.batch, maxLen: a["max-len"], lrLora: a["lr-lora"], lrFull: a["lr-full"], samples: a.samples, klTokens: a["kl-tokens"], repeats: a.repeats, calibration: { lm: `${H.wikiValid}, 16 × 8 windows of 128`, sst: `${H.sstTrain}, 16 × 16 examples, linear-probe head` } },
    command: `node bench/pruning-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(),
    wallSeconds: (Date.now() - started) / 1000,
    rows: all,
  });
for (const row of selected) {
  H.log(`=== ${row.name}: ${row.label}`);
  const res = await runRow(row);
  if (H.distHash() !== res.distHash) res.distChanged = true;
  all = [...all.filter((r) => r.name !== row.name), res].sort((x, y) => ROWS.findIndex((r) => r.name === x.name) - ROWS.findIndex((r) => r.name === y.name));
  save();
}

// ---------------------------------------------------------------------------------------------

const by = Object.fromEntries(all.map((r) => [r.name, r]));
const removed = (rep) => (rep ? 1 - rep.blockParametersAfter / rep.blockParametersBefore : NaN);
const pr = all.filter((r) => r.kind === "prune");
process.stdout.write(
  H.mdTable(
    ["importance", "ratio", "removed (blocks / all) [LM-calibrated]", "KL to float (nats/token)", "top-1 agreement", "ppl (ref ppl)", "SST-2 dev acc after LoRA", "removed [SST-2-calibrated]"],
    pr.map((r) => [
      r.label.replace(/ \d+ %$/, ""),
      r.name.endsWith("20") ? "20 %" : "30 %",
      r.lmPrune ? `${H.fmt.pct(removed(r.lmPrune.report))} / ${H.fmt.pct(1 - r.lmPrune.report.parametersAfter / r.lmPrune.report.parametersBefore)}` : "–",
      H.fmt.f(r.kl?.meanKl, 4),
      H.fmt.pct(r.kl?.top1, 2),
      r.kl ? `${H.fmt.f(r.kl.perplexity, 1)} (${H.fmt.f(r.kl.referencePerplexity, 1)})` : "–",
      H.fmt.pct(r.accuracy, 2),
      H.fmt.pct(removed(r.sstPrune?.report)),
    ]),
  ) + "\n\n",
);
const pa = ["lora", "full", "task-gradient-20", "task-gradient-30"].map((n) => by[n]).filter(Boolean);
process.stdout.write(
  H.mdTable(
    ["row", "SST-2 dev acc", "trainable", "train tok/s (whole run)", "train peak RSS MiB", "served bytes", "eval tok/s (median)", "other CPU during eval"],
    pa.map((r) => [r.label, H.fmt.pct(r.accuracy, 2), H.fmt.int(r.train.trainableParameters), H.fmt.int(r.train.runTokensPerS), H.fmt.int(r.train.peakRssMb), H.fmt.int(r.served.bytes), H.fmt.int(r.speed?.tokensPerS), H.fmt.pct(r.speed?.maxOtherCpu, 0)]),
  ) + "\n",
);
H.log(`done in ${((Date.now() - started) / 60000).toFixed(1)} min; JSON in ${path.relative(process.cwd(), a.out)}`);
