#!/usr/bin/env node
// The speed side of the AG News claims (docs/results/ag-news.md), measured as ratios to LoRA on the
// unpruned model inside one run, interleaved model by model and repeated (median), because the
// recipe's own per-stage numbers come from different minutes of a shared machine:
//   - training: LoRA steps on the base against LoRA steps on Pruning-Adapter's pruned folder;
//   - eval: `slimtune eval` tokens/s on the first --examples of dev.tsv for LoRA (base + adapter),
//     Pruning-Adapter and each FineGates run (what `eval` serves for it: the hardened, removed widths).
// Each timing records the share of the CPU the other processes used meanwhile.
//
//   node bench/ag-news-speed.mjs --run /work/runs/ag-news-s0 [--examples 200] [--steps 10] [--repeats 2]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const SPEC = {
  run: { type: "string", default: "", help: "the recipe's --out folder (recipes/ag-news.yaml)" },
  examples: { type: "int", default: 200, help: "dev examples per eval timing" },
  steps: { type: "int", default: 10, help: "LoRA steps per training timing" },
  repeats: { type: "int", default: 2, help: "timings per model (median)" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-ag-news-speed"), help: "scratch folder" },
  out: { type: "string", default: path.join(H.root, "bench/results/ag-news-speed.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, "node bench/ag-news-speed.mjs --run RUN");
if (!a.run) throw new Error("--run is required: the folder `slimtune run recipes/ag-news.yaml --out` wrote");
H.ensureBuilt();
H.setLogFile(a.out.replace(/\.json$/, ".log"));
fs.mkdirSync(a.work, { recursive: true });
const agNews = path.join(H.shared, "data/ag-news");
const lines = fs.readFileSync(path.join(agNews, "dev.tsv"), "utf8").split("\n");
const devSubset = path.join(a.work, `dev-${a.examples}.tsv`);
fs.writeFileSync(devSubset, `${lines.slice(0, a.examples + 1).join("\n")}\n`);

const at = (...p) => path.join(a.run, ...p);
const served = [
  { label: "LoRA (unpruned)", model: H.baseModel, adapter: at("lora") },
  { label: "Pruning-Adapter 30 %", model: at("pruning-adapter30"), adapter: at("pruning-adapter30", "adapter") },
  ...["finegates30", "finegates30-lora", "finegates40", "finegates40-lora"].map((s) => ({ label: s, model: at(s), adapter: null })),
].filter((m) => fs.existsSync(m.model) && (!m.adapter || fs.existsSync(m.adapter)));
const trained = [
  { label: "LoRA (unpruned)", model: H.baseModel },
  { label: "Pruning-Adapter 30 %", model: at("pruning-adapter30") },
].filter((m) => fs.existsSync(m.model));

async function trainTiming(m, i) {
  const out = path.join(a.work, `train-${i}`);
  fs.rmSync(out, { recursive: true, force: true });
  const r = await H.cli(["finetune", "--method", "lora", "--model", m.model, "--lr", "1e-3", "--task", "classify", "--data", path.join(agNews, "train.tsv"), "--steps", String(a.steps), "--batch", "16", "--max-len", "64", "--eval-every", "0", "--checkpoint-every", "0", "--held-out", "0", "--out", out], { label: `train ${m.label}` });
  return { stepTokensPerS: H.stepThroughput(out, 3)?.medianTokensPerS, otherCpu: r.run.otherCpu };
}

async function evalTiming(m) {
  const r = await H.cli(["eval", "--task", "classify", "--model", m.model, ...(m.adapter ? ["--adapter", m.adapter] : []), "--data", devSubset], { label: `eval ${m.label}` });
  return { tokensPerS: r.json.tokensPerSecond, accuracy: r.json.accuracy, description: r.json.description, otherCpu: r.run.otherCpu };
}

const trainRows = trained.map((m) => ({ ...m, runs: [] }));
const evalRows = served.map((m) => ({ ...m, runs: [] }));
for (let k = 0; k < a.repeats; k++) {
  for (const [i, m] of trainRows.entries()) m.runs.push(await trainTiming(m, i));
  for (const m of evalRows) m.runs.push(await evalTiming(m));
}
const summary = {
  train: trainRows.map((m) => ({ label: m.label, stepTokensPerS: H.median(m.runs.map((t) => t.stepTokensPerS)), maxOtherCpu: Math.max(...m.runs.map((t) => t.otherCpu)), runs: m.runs })),
  eval: evalRows.map((m) => ({ label: m.label, description: m.runs[0]?.description, tokensPerS: H.median(m.runs.map((t) => t.tokensPerS)), maxOtherCpu: Math.max(...m.runs.map((t) => t.otherCpu)), runs: m.runs })),
};
H.writeJson(a.out, { machine: H.machineInfo(), settings: { run: a.run, examples: a.examples, steps: a.steps, repeats: a.repeats }, command: `node bench/ag-news-speed.mjs ${process.argv.slice(2).join(" ")}`, ...summary });
const [t0] = summary.train;
const [e0] = summary.eval;
process.stdout.write(
  `${H.mdTable(
    ["trained model", "LoRA step tok/s (median)", "vs unpruned", "max other CPU"],
    summary.train.map((s) => [s.label, H.fmt.int(s.stepTokensPerS), H.fmt.x(s.stepTokensPerS / t0.stepTokensPerS), H.fmt.pct(s.maxOtherCpu, 0)]),
  )}\n\n${H.mdTable(
    ["served model", "what eval loads", "eval tok/s (median)", "vs LoRA unpruned", "max other CPU"],
    summary.eval.map((s) => [s.label, s.description, H.fmt.int(s.tokensPerS), H.fmt.x(s.tokensPerS / e0.tokensPerS), H.fmt.pct(s.maxOtherCpu, 0)]),
  )}\n`,
);
