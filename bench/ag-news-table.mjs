#!/usr/bin/env node
// The table of docs/results/ag-news.md from the folders `slimtune run recipes/ag-news.yaml` wrote
// (one per seed): dev.tsv accuracy with its standard error sqrt(p(1-p)/n) per seed and the mean,
// served bytes and parameters (each stage's report.json), training tokens/s (the stage's summary),
// eval speed (eval.json) and each stage's wall time (the runner's .stages/NAME.json). A row a seed
// did not reach is left empty. The speeds come from different minutes of a shared machine: read them
// as what the run saw, and bench/ag-news-speed.mjs for ratios measured side by side.
//
//   node bench/ag-news-table.mjs --runs /work/runs/ag-news-s0,/work/runs/ag-news-s1 [--out bench/results/ag-news-table.json]

import fs from "node:fs";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const a = H.parseFlags(
  process.argv.slice(2),
  {
    runs: { type: "list", default: null, help: "the recipe's --out folders, one per seed (seed 0 first)" },
    out: { type: "string", default: path.join(H.root, "bench/results/ag-news-table.json"), help: "JSON results" },
  },
  "node bench/ag-news-table.mjs --runs RUN_SEED0,RUN_SEED1",
);
if (!a.runs) throw new Error("--runs is required");

const ROWS = [
  ["LoRA (float)", "lora"],
  ["full fine-tuning", "full"],
  ["PEQA 4-bit", "peqa4"],
  ["QLoRA 4-bit", "qlora4"],
  ["PEQA 3-bit", "peqa3"],
  ["QLoRA 3-bit", "qlora3"],
  ["FineGates 30 %", "finegates30"],
  ["FineGates 30 % + LoRA", "finegates30-lora"],
  ["FineGates 40 %", "finegates40"],
  ["FineGates 40 % + LoRA", "finegates40-lora"],
  ["Pruning-Adapter 30 %", "pruning-adapter30"],
  ["QPruner 3-bit avg (BO)", "qpruner-bo"],
  ["QPruner 3-bit uniform", "qpruner-uniform"],
];

const readJson = (file) => (fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : null);
const stderr = (p, n) => Math.sqrt((p * (1 - p)) / n);

function seedRow(run, stage) {
  const dev = readJson(path.join(run, `${stage}-dev`, "eval.json"));
  const report = readJson(path.join(run, stage, "report.json"));
  const state = readJson(path.join(run, ".stages", `${stage}.json`));
  const evalState = readJson(path.join(run, ".stages", `${stage}-dev.json`));
  const s = report?.summary ?? {};
  const training = s.tokensPerSecond ?? s.training?.tokensPerSecond ?? s.recovery?.tokensPerSecond ?? null;
  return {
    accuracy: dev?.accuracy ?? null,
    examples: dev?.examples ?? null,
    stderr: dev ? stderr(dev.accuracy, dev.examples) : null,
    servedBytes: report?.servedBytes ?? null,
    parameters: report?.parameters ?? null,
    trainTokensPerS: training,
    evalTokensPerS: dev?.tokensPerSecond ?? null,
    evalSeconds: dev?.seconds ?? null,
    stageSeconds: state?.finished ? state.seconds : null,
    evalStageSeconds: evalState?.finished ? evalState.seconds : null,
  };
}

const rows = ROWS.map(([label, stage]) => {
  const seeds = a.runs.map((run) => seedRow(run, stage));
  const accs = seeds.map((s) => s.accuracy).filter((x) => x !== null);
  return { label, stage, seeds, meanAccuracy: accs.length ? accs.reduce((x, y) => x + y, 0) / accs.length : null, seedsRun: accs.length };
});
H.writeJson(a.out, { runs: a.runs, rows });

const pct = (x) => (x === null ? "" : `${(100 * x).toFixed(1)}`);
const acc = (s) => (s.accuracy === null ? "not run" : `${pct(s.accuracy)} ± ${pct(s.stderr)}`);
const mb = (b) => (b === null ? "" : (b / 1e6).toFixed(2));
const int = (x) => (x === null ? "" : H.fmt.int(x));
process.stdout.write(
  `${H.mdTable(
    ["branch", ...a.runs.map((_, i) => `seed ${i}: accuracy % ± SE`), "mean %", "served MB", "parameters", "train tok/s (seed 0)", "eval tok/s (seed 0)", "stage s + eval s (seed 0)"],
    rows.map((r) => {
      const s0 = r.seeds[0];
      return [r.label, ...r.seeds.map(acc), r.seedsRun > 1 ? pct(r.meanAccuracy) : "", mb(s0.servedBytes), int(s0.parameters), int(s0.trainTokensPerS), int(s0.evalTokensPerS), s0.stageSeconds === null ? "" : `${Math.round(s0.stageSeconds)} + ${s0.evalStageSeconds === null ? "–" : Math.round(s0.evalStageSeconds)}`];
    }),
  )}\n`,
);
