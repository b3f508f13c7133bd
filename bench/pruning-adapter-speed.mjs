#!/usr/bin/env node
// Speed and memory of Pruning-Adapter against LoRA on the unpruned model (docs/results/pruning.md):
// LoRA training steps on the base and on pruned folders (median step tokens/s, peak RSS), and the
// served model's SST-2 dev eval tokens/s, interleaved base/pruned/base/… and the median taken.
//
//   node bench/pruning-adapter-speed.mjs --pruned DIR1,DIR2 --labels "20 %,30 %" [--steps 40] [--repeats 3]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const SPEC = {
  pruned: { type: "list", default: null, help: "Pruning-Adapter output folders (pruned model + adapter/)" },
  labels: { type: "list", default: null, help: "a label per folder" },
  steps: { type: "int", default: 40, help: "LoRA steps per training timing" },
  repeats: { type: "int", default: 3, help: "timings per model (median)" },
  "max-wait": { type: "int", default: 600, help: "seconds to wait for a quiet machine" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-pa-speed"), help: "scratch folder" },
  out: { type: "string", default: path.join(H.root, "bench/results/pruning-adapter-speed.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, "node bench/pruning-adapter-speed.mjs --pruned DIR1,DIR2");
fs.mkdirSync(a.work, { recursive: true });
const machine = H.machineInfo();
const models = [{ label: "unpruned (LoRA)", model: H.baseModel, adapter: null }, ...a.pruned.map((d, i) => ({ label: a.labels?.[i] ?? path.basename(d), model: d, adapter: path.join(d, "adapter") }))];

async function trainTiming(m, i) {
  const out = path.join(a.work, `train-${i}`);
  fs.rmSync(out, { recursive: true, force: true });
  const r = await H.cli(["finetune", "--method", "lora", "--rank", "8", "--alpha", "16", "--model", m.model, "--lr", "1e-3", "--task", "classify", "--data", H.sstTrain, "--steps", String(a.steps), "--batch", "16", "--max-len", "64", "--eval-every", "0", "--checkpoint-every", "0", "--held-out", "0", "--out", out], { label: `train ${m.label}` });
  return { stepTokensPerS: H.stepThroughput(out, 5)?.medianTokensPerS, peakRssMb: r.json.peakRssMb, otherCpu: r.run.otherCpu };
}

async function evalTiming(m) {
  const r = await H.cli(["eval", "--task", "classify", "--model", m.model, ...(m.adapter ? ["--adapter", m.adapter] : ["--adapter", a.loraAdapter]), "--data", H.sstDev], { label: `eval ${m.label}` });
  return { tokensPerS: r.json.tokensPerSecond, otherCpu: r.run.otherCpu };
}

// The unpruned row serves base + a LoRA adapter: train one first (it is also the first timing's output).
const results = models.map((m) => ({ ...m, train: [], eval: [] }));
await H.waitQuiet({ maxWaitS: a["max-wait"], what: "training timings" });
for (let k = 0; k < a.repeats; k++) for (const [i, m] of results.entries()) m.train.push(await trainTiming(m, i));
a.loraAdapter = path.join(a.work, "train-0");
await H.waitQuiet({ maxWaitS: a["max-wait"], what: "eval timings" });
for (let k = 0; k < a.repeats; k++) for (const m of results) m.eval.push(await evalTiming(m));
const summary = results.map((m) => ({
  label: m.label,
  model: m.model,
  stepTokensPerS: H.median(m.train.map((t) => t.stepTokensPerS)),
  peakRssMb: H.median(m.train.map((t) => t.peakRssMb)),
  evalTokensPerS: H.median(m.eval.map((t) => t.tokensPerS)),
  maxOtherCpu: Math.max(...m.train.map((t) => t.otherCpu), ...m.eval.map((t) => t.otherCpu)),
  runs: { train: m.train, eval: m.eval },
}));
H.writeJson(a.out, { machine, settings: { steps: a.steps, repeats: a.repeats }, command: `node bench/pruning-adapter-speed.mjs ${process.argv.slice(2).join(" ")}`, rows: summary });
const base = summary[0];
process.stdout.write(
  `${H.mdTable(
    ["model", "LoRA step tok/s (median)", "vs unpruned", "training peak RSS MiB", "eval tok/s (median)", "vs unpruned", "max other CPU"],
    summary.map((s) => [s.label, H.fmt.int(s.stepTokensPerS), H.fmt.x(s.stepTokensPerS / base.stepTokensPerS), H.fmt.int(s.peakRssMb), H.fmt.int(s.evalTokensPerS), H.fmt.x(s.evalTokensPerS / base.evalTokensPerS), H.fmt.pct(s.maxOtherCpu, 0)]),
  )}\n`,
);
