#!/usr/bin/env node
// QPruner experiment (docs/results/qpruner.md): ref-llama-5m pruned 20 % (Taylor importance on the
// task), then uniform 4-bit, uniform 3-bit, importance-only mixed and BO mixed at the bytes of each
// uniform point, each followed by the same LoRA recovery. --task lm (default): the task is WikiText-2
// (train on valid, the objective on its held-out tail), scored by test perplexity and KL to the float
// model with the adapter; --task classify: SST-2, scored by dev accuracy. Both also report the
// compressed model's own WikiText-2 perplexity and KL (no adapter). The BO rows also evaluate every
// uniform allocation with the trial objective; their trials make the Pareto front (bytes vs loss).
// One more row runs every stage once at the SmolLM2-135M shape (random weights) for wall time and
// memory, not quality.
//
//   npx tsc -p tsconfig.build.json
//   node bench/qpruner-experiment.mjs                    # ~1.5 h on a busy 2-core machine
//   node bench/qpruner-experiment.mjs --rows smollm --merge

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const USAGE = "node bench/qpruner-experiment.mjs [--rows a,b] [--trials 16] [--merge]";
const SPEC = {
  task: { type: "string", default: "lm", help: "lm (WikiText-2) or classify (SST-2)" },
  ratio: { type: "float", default: 0.2, help: "pruning ratio of every row" },
  steps: { type: "int", default: 300, help: "final LoRA recovery steps of every row" },
  batch: { type: "int", default: 16, help: "SST-2 examples per step (lm: 8 sequences of 128)" },
  "max-len": { type: "int", default: 64, help: "SST-2 tokens kept per example" },
  lr: { type: "float", default: 1e-3, help: "LoRA learning rate (final and trials)" },
  trials: { type: "int", default: 16, help: "BO trials per BO row" },
  "recovery-steps": { type: "int", default: 30, help: "LoRA steps per BO trial (K)" },
  workers: { type: "int", default: 2, help: "BO worker processes" },
  "group-size": { type: "int", default: 32, help: "quantization group size" },
  "kl-tokens": { type: "int", default: 65536, help: "WikiText-2 test tokens for perplexity / KL of the compressed model" },
  rows: { type: "list", default: null, help: "rows to run (default: all); see --list" },
  list: { type: "bool", default: false, help: "list the rows and exit" },
  merge: { type: "bool", default: false, help: "update only the rows run in an existing --out JSON" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-qpruner"), help: "scratch folder" },
  out: { type: "string", default: null, help: "JSON results (default bench/results/qpruner-<task>.json)" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, USAGE);
const lm = a.task === "lm";
a.out ??= path.join(H.root, `bench/results/qpruner-${lm ? "lm" : "sst2"}.json`);

const ROWS = [
  { name: "u3", label: "uniform 3-bit", args: () => ["--allocation", "uniform", "--avg-bits", "3"] },
  { name: "u4", label: "uniform 4-bit", args: () => ["--allocation", "uniform", "--avg-bits", "4"] },
  { name: "imp-b3", label: "importance-only mixed @ uniform-3 bytes", args: (b) => ["--allocation", "importance", "--budget-mb", mb(b.u3)] },
  { name: "bo-b3", label: "BO mixed @ uniform-3 bytes", args: (b) => ["--allocation", "bo", "--trials", String(a.trials), "--reference-uniform", "--budget-mb", mb(b.u3)] },
  { name: "imp-b4", label: "importance-only mixed @ uniform-4 bytes", args: (b) => ["--allocation", "importance", "--budget-mb", mb(b.u4)] },
  { name: "bo-b4", label: "BO mixed @ uniform-4 bytes", args: (b) => ["--allocation", "bo", "--trials", String(a.trials), "--budget-mb", mb(b.u4)] },
  { name: "smollm", label: "SmolLM2-135M shape (random weights): every stage once", smollm: true },
];
const mb = (bytes) => {
  if (!Number.isFinite(bytes)) throw new Error("run the uniform rows first (their bytes set the budgets)");
  return String(bytes / 1e6);
};
if (a.list) {
  for (const r of ROWS) process.stdout.write(`${r.name.padEnd(8)} ${r.label}\n`);
  process.exit(0);
}

H.ensureBuilt();
fs.mkdirSync(a.work, { recursive: true });
H.setLogFile(path.join(a.work, "qpruner.log"));
const started = Date.now();
const machine = H.machineInfo();
H.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, commit ${machine.commit}`);

let all = a.merge && fs.existsSync(a.out) ? JSON.parse(fs.readFileSync(a.out, "utf8")).rows : [];
const bytesOf = (name) => all.find((r) => r.name === name)?.allocation?.bytes;

const taskArgs = lm
  ? ["--task", "lm", "--data", H.wikiValid, "--batch", "8", "--seq", "128", "--eval-tokens", "16384"]
  : ["--task", "classify", "--data", H.sstTrain, "--eval-data", H.sstDev, "--batch", String(a.batch), "--max-len", String(a["max-len"])];
const common = [
  "--model", H.baseModel, ...taskArgs, "--ratio", String(a.ratio), "--importance", "taylor", "--group-size", String(a["group-size"]),
  "--steps", String(a.steps), "--lr", String(a.lr), "--recovery-steps", String(a["recovery-steps"]), "--recovery-lr", String(a.lr),
  "--samples", "16", "--workers", String(a.workers), "--seed", "0",
];

async function qprunerRow(row) {
  const out = path.join(a.work, `run-${row.name}`);
  const r = await H.cli(["qpruner", ...common, ...row.args({ u3: bytesOf("u3"), u4: bytesOf("u4") }), "--out", out], { label: row.name });
  const s = r.json;
  const res = {
    name: row.name,
    label: row.label,
    command: r.command,
    wallS: r.run.wallS,
    maxRssMb: r.run.maxRssMb,
    otherCpu: r.run.otherCpu,
    prune: s.prune,
    allocation: s.allocation,
    recovery: s.recovery,
    accuracy: s.recovery.heldOutAfter.metrics.accuracy ?? null,
    heldOutPerplexity: s.recovery.heldOutAfter.metrics.perplexity ?? null,
    modelBytes: s.modelBytes,
    adapterBytes: Object.entries(s.files).filter(([f]) => f.startsWith("adapter/")).reduce((t, [, b]) => t + b, 0),
    seconds: s.seconds,
    out,
  };
  if (fs.existsSync(path.join(out, "pareto.json"))) res.pareto = JSON.parse(fs.readFileSync(path.join(out, "pareto.json"), "utf8"));
  const mp = JSON.parse(fs.readFileSync(path.join(out, "mixed-precision.json"), "utf8"));
  res.trials = mp.trials;
  const k = await H.cli(["eval", "--model", out, "--reference", H.baseModel, "--data", H.wikiTest, "--max-tokens", String(a["kl-tokens"])], { label: `${row.name}: perplexity and KL of the compressed model` });
  res.lm = { perplexity: k.json.perplexity, referencePerplexity: k.json.referencePerplexity, meanKl: k.json.meanKl, top1: k.json.top1Agreement, tokens: k.json.tokens };
  if (lm) {
    // The deployed model: the compressed folder with its recovery adapter.
    const t = await H.cli(["eval", "--model", out, "--adapter", path.join(out, "adapter"), "--reference", H.baseModel, "--data", H.wikiTest, "--max-tokens", String(a["kl-tokens"])], { label: `${row.name}: with the adapter` });
    res.adapted = { perplexity: t.json.perplexity, meanKl: t.json.meanKl, top1: t.json.top1Agreement, tokens: t.json.tokens };
  }
  H.log(`  ${row.name}: bits ${s.allocation.bits.join(",")} (${s.allocation.avgBits.toFixed(3)} bits/weight, ${s.allocation.bytes} bytes) → ${lm ? `test ppl with adapter ${res.adapted.perplexity.toFixed(2)}` : `SST-2 dev ${(100 * res.accuracy).toFixed(2)} %`}, compressed model ppl ${res.lm.perplexity.toFixed(2)}, KL ${res.lm.meanKl.toFixed(4)}`);
  return res;
}

/** A SmolLM2-135M-shape folder with seeded N(0, 0.02²) weights, unit norms, and ref-llama-5m's tokenizer (ids < 4096). */
async function smollmFolder() {
  const dir = path.join(a.work, "smollm2-135m-random");
  if (fs.existsSync(path.join(dir, "model.safetensors"))) return dir;
  const L = await import(path.join(H.root, "dist/index.js"));
  const config = L.readLlamaConfig(path.join(H.shared, "models/smollm2-135m-shape"));
  const rng = new L.Rng(1);
  const weights = new Map();
  for (const [n, shape] of L.llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (n.endsWith("norm.weight")) data.fill(1);
    else rng.fillNormal(data, 0.02);
    weights.set(n, data);
  }
  L.saveLlamaFolder(dir, config, weights, H.baseModel);
  return dir;
}

async function smollmRow(row) {
  const model = await smollmFolder();
  const res = { name: row.name, label: row.label, stages: [] };
  const stage = async (what, args) => {
    const r = await H.cli(args, { label: `smollm: ${what}` });
    res.stages.push({ what, command: r.command, wallS: r.run.wallS, maxRssMb: r.run.maxRssMb, otherCpu: r.run.otherCpu, json: r.json });
    H.log(`  ${what}: ${r.run.wallS.toFixed(0)} s, max RSS ${r.run.maxRssMb.toFixed(0)} MiB`);
    return r.json;
  };
  const lm = ["--task", "lm", "--data", H.wikiValid, "--seq", "128", "--batch", "4", "--samples", "4"];
  await stage("prune 20 % (Taylor, 4 × 4 × 128 tokens)", ["prune", "--model", model, "--ratio", "0.2", ...lm, "--out", path.join(a.work, "smollm-pruned")]);
  await stage("quantize --avg-bits 3 (importance only)", ["quantize", "--model", model, "--group-size", "32", "--avg-bits", "3", "--data", H.wikiValid, "--samples", "4", "--batch", "4", "--seq", "128", "--out", path.join(a.work, "smollm-q3")]);
  await stage("qpruner: 20 %, --avg-bits 3, 4 BO trials of 5 steps, 10 recovery steps, 2 workers", ["qpruner", "--model", model, "--ratio", "0.2", "--avg-bits", "3", "--trials", "4", "--recovery-steps", "5", "--steps", "10", "--workers", "2", ...lm, "--eval-tokens", "4096", "--out", path.join(a.work, "smollm-qpruner")]);
  await stage("pruning-adapter: 20 %, task-gradient, 10 LoRA steps", ["pruning-adapter", "--model", model, "--ratio", "0.2", "--steps", "10", ...lm, "--eval-tokens", "4096", "--out", path.join(a.work, "smollm-pa")]);
  return res;
}

const selected = a.rows ? a.rows.map((n) => ROWS.find((r) => r.name === n) ?? (() => { throw new Error(`unknown row ${n}`); })()) : ROWS;
const save = () =>
  H.writeJson(a.out, {
    experiment: `qpruner-${a.task}`,
    machine,
    settings: { task: a.task, model: H.baseModel, ratio: a.ratio, steps: a.steps, batch: a.batch, maxLen: a["max-len"], lr: a.lr, trials: a.trials, recoverySteps: a["recovery-steps"], workers: a.workers, groupSize: a["group-size"], klTokens: a["kl-tokens"] },
    command: `node bench/qpruner-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(),
    wallSeconds: (Date.now() - started) / 1000,
    rows: all,
  });
for (const row of selected) {
  H.log(`=== ${row.name}: ${row.label}`);
  const res = row.smollm ? await smollmRow(row) : await qprunerRow(row);
  all = [...all.filter((r) => r.name !== row.name), res].sort((x, y) => ROWS.findIndex((r) => r.name === x.name) - ROWS.findIndex((r) => r.name === y.name));
  save();
}

// ---------------------------------------------------------------------------------------------

const q = all.filter((r) => r.allocation);
process.stdout.write(
  H.mdTable(
    ["row", "bits per layer", "code bits/weight", "stored bytes (allocation)", "model.safetensors", lm ? "WikiText-2 test ppl (with adapter)" : "SST-2 dev acc", lm ? "KL to float (with adapter)" : "held-out loss before → after recovery", "compressed model: ppl / KL / top-1 (no adapter)"],
    q.map((r) => [
      r.label,
      r.allocation.bits.join(","),
      H.fmt.f(r.allocation.avgBits, 3),
      H.fmt.int(r.allocation.bytes),
      H.fmt.int(r.modelBytes),
      lm ? H.fmt.f(r.adapted?.perplexity, 2) : H.fmt.pct(r.accuracy, 2),
      lm ? H.fmt.f(r.adapted?.meanKl, 4) : `${H.fmt.f(r.recovery.heldOutBefore.loss, 4)} → ${H.fmt.f(r.recovery.heldOutAfter.loss, 4)}`,
      `${H.fmt.f(r.lm.perplexity, 2)} / ${H.fmt.f(r.lm.meanKl, 4)} / ${H.fmt.pct(r.lm.top1, 2)}`,
    ]),
  ) + "\n\n",
);
// The combined Pareto front of every BO trial and the uniform references.
const points = [];
for (const r of q.filter((x) => x.trials?.length)) for (const t of r.trials) points.push({ row: r.name, bits: t.bits.join(","), bytes: t.bytes, loss: t.loss, origin: t.origin });
if (points.length) {
  const uniq = [...new Map(points.map((p) => [`${p.bits}`, p])).values()];
  const P = await import(path.join(H.root, "dist/recipes/mixed-precision/pareto.js"));
  const pts = uniq.map((p) => ({ bytes: p.bytes, loss: p.loss, origin: p.origin, label: p.origin === "uniform" ? `uniform ${p.bits.split(",")[0]}-bit` : `${p.row}: ${p.bits}` }));
  const front = P.paretoFront(pts).map((i) => pts[i]);
  const uniforms = pts.filter((p) => p.origin === "uniform");
  const nonUniformFront = P.paretoFront(pts.filter((p) => p.origin !== "uniform")).map((i) => pts.filter((p) => p.origin !== "uniform")[i]);
  const dominance = uniforms.map((u) => ({ uniform: u.label, bytes: u.bytes, loss: u.loss, dominatedByMixed: P.dominatedBy(nonUniformFront.filter((f) => f !== u), u) }));
  const svg = P.paretoSvg(pts, { title: `QPruner on ref-llama-5m (20 % pruned): held-out ${lm ? "WikiText-2" : "SST-2"} loss after ${a["recovery-steps"]} LoRA steps vs bytes`, lossLabel: "held-out loss after the trial's recovery" });
  const stem = a.out.replace(/\.json$/, "");
  fs.writeFileSync(`${stem}-pareto.svg`, svg);
  H.writeJson(`${stem}-pareto.json`, { points: uniq, front, dominance });
  process.stdout.write(`${H.mdTable(["uniform point", "bytes", "trial loss", "dominated by a mixed allocation"], dominance.map((d) => [d.uniform, H.fmt.int(d.bytes), H.fmt.f(d.loss, 4), d.dominatedByMixed ? "yes" : "no"]))}\n`);
}
const sm = all.find((r) => r.name === "smollm");
if (sm) process.stdout.write(`\n${H.mdTable(["SmolLM2-135M shape stage", "wall s", "max RSS MiB", "other CPU"], sm.stages.map((s) => [s.what, H.fmt.f(s.wallS, 0), H.fmt.int(s.maxRssMb), H.fmt.pct(s.otherCpu, 0)]))}\n`);
H.log(`done in ${((Date.now() - started) / 60000).toFixed(1)} min`);
