#!/usr/bin/env node
// FineGates experiment (docs/results/finegates.md): ref-llama-5m on SST-2 with the same budget for
// every row (steps, batch, max length): LoRA, full fine-tuning, FineGates at three target sparsities
// and FineGates + LoRA; dev accuracy of the saved model, parameters removed, trainable parameters,
// and the pruned model's eval speed against the unpruned base with the same head (SST-2 dev
// classification, and perplexity on the first 65,536 WikiText-2 test tokens; 3 timings each,
// interleaved, median). Plus one language-modelling row: FineGates at 0.2 on WikiText-2 valid, test
// perplexity of the base and of the pruned folder, and the gated model (before removal) against the
// pruned one on the same held-out tokens.
//
//   npx tsc -p tsconfig.build.json
//   node bench/finegates-experiment.mjs                 # everything (~25 min on 2 cores)
//   node bench/finegates-experiment.mjs --rows lora,fg30 --steps 100
//
// Every slimtune step is its own `node dist/cli/main.js … --json` process; timed runs wait for a
// quiet machine first. Progress on stderr, the table on stdout, JSON in bench/results/finegates.json.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const USAGE = "node bench/finegates-experiment.mjs [--steps 300] [--batch 16] [--max-len 64] [--rows a,b] [--repeats 3]";
const SPEC = {
  steps: { type: "int", default: 300, help: "optimizer steps of every SST-2 row" },
  batch: { type: "int", default: 16, help: "SST-2 examples per step" },
  "max-len": { type: "int", default: 64, help: "SST-2 tokens kept per example" },
  warmup: { type: "int", default: 10, help: "linear warm-up steps (the CLI's default; capped at the steps)" },
  "lr-lora": { type: "float", default: 1e-3, help: "LoRA learning rate" },
  "lr-full": { type: "float", default: 1e-4, help: "full fine-tuning learning rate" },
  "lr-finegates": { type: "float", default: 1e-3, help: "FineGates learning rate (gates get --gate-lr-scale 20 × this)" },
  "lm-steps": { type: "int", default: 150, help: "LM row: steps (as the PEQA experiment)" },
  "lm-batch": { type: "int", default: 8, help: "LM row: sequences per step" },
  "lm-seq": { type: "int", default: 256, help: "LM row: tokens per sequence (and eval --ctx)" },
  "speed-tokens": { type: "int", default: 65536, help: "WikiText-2 test tokens timed for the perplexity-speed measure" },
  repeats: { type: "int", default: 3, help: "timings per model (median)" },
  rows: { type: "list", default: null, help: "rows to run (default: all); see --list" },
  list: { type: "bool", default: false, help: "list the rows and exit" },
  "max-wait": { type: "int", default: 1200, help: "seconds to wait for a quiet machine before timed runs" },
  merge: { type: "bool", default: false, help: "update only the rows run in an existing --out JSON" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-finegates"), help: "scratch folder" },
  out: { type: "string", default: path.join(H.root, "bench/results/finegates.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, USAGE);

const ROWS = [
  { name: "lora", label: "LoRA r 8", method: "lora", lr: () => a["lr-lora"], extra: ["--rank", "8", "--alpha", "16"] },
  { name: "full", label: "full fine-tuning", method: "full", lr: () => a["lr-full"], extra: [] },
  ...[0.2, 0.3, 0.4].map((s) => ({ name: `fg${Math.round(s * 100)}`, label: `FineGates ${s}`, method: "finegates", sparsity: s, lr: () => a["lr-finegates"], extra: ["--target-sparsity", String(s)] })),
  { name: "fg30-lora", label: "FineGates 0.3 + LoRA r 8", method: "finegates", sparsity: 0.3, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.3", "--lora-rank", "8"] },
  { name: "lm-fg20", label: "LM: FineGates 0.2 on WikiText-2", method: "finegates", sparsity: 0.2, lm: true, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.2"] },
  // diagnostics, only with --rows: what limits the gates-only rows
  { name: "fg30-sigma0.1", label: "FineGates 0.3, --gate-sigma 0.1", method: "finegates", sparsity: 0.3, optional: true, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.3", "--gate-sigma", "0.1"] },
  { name: "fg30-noharden", label: "FineGates 0.3, --no-harden", method: "finegates", sparsity: 0.3, optional: true, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.3", "--no-harden"] },
  { name: "fg40-lora", label: "FineGates 0.4 + LoRA r 8", method: "finegates", sparsity: 0.4, optional: true, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.4", "--lora-rank", "8"] },
  // train → harden → train: FineGates for 2/3 of the budget, then LoRA on the pruned folder for the rest.
  { name: "fg40-lora-recover", label: "FineGates 0.4 + LoRA r 8, then LoRA r 8 on the pruned model", method: "finegates", sparsity: 0.4, optional: true, recoverShare: 1 / 3, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.4", "--lora-rank", "8"] },
  { name: "fg40-recover", label: "FineGates 0.4, then LoRA r 8 on the pruned model", method: "finegates", sparsity: 0.4, optional: true, recoverShare: 1 / 3, lr: () => a["lr-finegates"], extra: ["--target-sparsity", "0.4"] },
];
/** Steps of a row's FineGates phase (the rest of the budget goes to recovery). */
const gateSteps = (row) => (row.recoverShare ? Math.round(a.steps * (1 - row.recoverShare)) : a.steps);
if (a.list) {
  for (const r of ROWS) process.stdout.write(`${r.name.padEnd(14)} ${r.label}${r.optional ? " (only with --rows)" : ""}\n`);
  process.exit(0);
}

H.ensureBuilt();
fs.mkdirSync(a.work, { recursive: true });
H.setLogFile(path.join(a.work, "finegates.log"));
const started = Date.now();
const machine = H.machineInfo();
H.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, commit ${machine.commit}${machine.srcDirty ? " (src/ has uncommitted changes)" : ""}`);

// ---------------------------------------------------------------------------------------------

async function finetune(row) {
  const out = path.join(a.work, `run-${row.name}`);
  fs.rmSync(out, { recursive: true, force: true });
  const common = ["finetune", "--method", row.method, "--model", H.baseModel, "--lr", String(row.lr()), "--warmup", String(Math.min(a.warmup, row.lm ? a["lm-steps"] : gateSteps(row))), "--eval-every", "0", "--checkpoint-every", "0", ...row.extra];
  const args = row.lm
    ? [...common, "--data", H.wikiValid, "--steps", String(a["lm-steps"]), "--batch", String(a["lm-batch"]), "--seq", String(a["lm-seq"]), "--held-out", "0.05", "--out", out]
    : [...common, "--task", "classify", "--data", H.sstTrain, "--eval-data", H.sstDev, "--steps", String(gateSteps(row)), "--batch", String(a.batch), "--max-len", String(a["max-len"]), "--out", out];
  const quiet = await H.waitQuiet({ maxWaitS: a["max-wait"], what: `${row.name} training` });
  const r = await H.cli(args, { label: `train ${row.name}` });
  const s = r.json;
  const record = H.trainRecord(r, out, row.lr());
  const metric = row.lm ? "perplexity" : "accuracy";
  H.log(`  ${row.name}: loss ${s.firstLoss?.toFixed(4)} → ${s.lastLoss?.toFixed(4)}; held-out ${metric} ${s.heldOutBefore?.metrics[metric]?.toFixed(4)} → ${s.heldOutAfter?.metrics[metric]?.toFixed(4)}; ${Math.round(record.stepTokensPerS)} tok/s median step; peak RSS ${s.peakRssMb.toFixed(0)} MiB`);
  return {
    ...record,
    writtenBytes: H.sumValues(s.files),
    otherCpu: r.run.otherCpu,
    quiet,
  };
}

async function evalClassify(model, adapter, label) {
  const r = await H.cli(["eval", "--task", "classify", "--model", model, ...(adapter ? ["--adapter", adapter] : []), "--data", H.sstDev], { label });
  return { accuracy: r.json.accuracy, loss: r.json.loss, examples: r.json.examples, seconds: r.json.seconds, tokensPerS: r.json.tokensPerSecond, wallS: r.run.wallS, otherCpu: r.run.otherCpu, command: r.command };
}

async function evalPpl(model, maxTokens, label) {
  const args = ["eval", "--model", model, "--data", H.wikiTest, "--ctx", String(a["lm-seq"])];
  if (maxTokens) args.push("--max-tokens", String(maxTokens));
  const r = await H.cli(args, { label });
  return { perplexity: r.json.perplexity, meanNll: r.json.meanNll, tokens: r.json.tokens, seconds: r.json.seconds, tokensPerS: r.json.tokens_per_s, wallS: r.run.wallS, otherCpu: r.run.otherCpu, command: r.command };
}

/** The unpruned base with a row's classifier head beside it (symlinks to the base's files). */
function baseWithHead(row, prunedDir) {
  const dir = path.join(a.work, `base-with-head-${row.name}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(H.baseModel)) {
    if (f === "reference.json" || f === "training_log.json") continue;
    fs.symlinkSync(path.join(H.baseModel, f), path.join(dir, f));
  }
  for (const f of ["classifier.json", "classifier.safetensors"]) fs.copyFileSync(path.join(prunedDir, f), path.join(dir, f));
  return dir;
}

/** Interleaved timings (base, pruned, base, pruned, …); medians of tokens/s and their ratio. */
async function timePair(kind, baseDir, prunedDir) {
  await H.waitQuiet({ maxWaitS: a["max-wait"], what: `${kind} speed timings` });
  const runs = { base: [], pruned: [] };
  for (let i = 0; i < a.repeats; i++) {
    for (const [which, dir] of [["base", baseDir], ["pruned", prunedDir]]) {
      const r = kind === "classify" ? await evalClassify(dir, null, `time ${which} classify ${i + 1}/${a.repeats}`) : await evalPpl(dir, a["speed-tokens"], `time ${which} perplexity ${i + 1}/${a.repeats}`);
      runs[which].push({ tokensPerS: r.tokensPerS, seconds: r.seconds, wallS: r.wallS, otherCpu: r.otherCpu });
    }
  }
  const med = (xs, k) => H.median(xs.map((x) => x[k]));
  const out = {
    baseTokensPerS: med(runs.base, "tokensPerS"),
    prunedTokensPerS: med(runs.pruned, "tokensPerS"),
    baseWallS: med(runs.base, "wallS"),
    prunedWallS: med(runs.pruned, "wallS"),
    maxOtherCpu: Math.max(...[...runs.base, ...runs.pruned].map((r) => r.otherCpu)),
    runs,
  };
  out.speedup = out.prunedTokensPerS / out.baseTokensPerS;
  out.wallSpeedup = out.baseWallS / out.prunedWallS;
  H.log(`  ${kind}: pruned ${out.prunedTokensPerS.toFixed(0)} vs base ${out.baseTokensPerS.toFixed(0)} tok/s → ${out.speedup.toFixed(3)}× (process wall ${out.wallSpeedup.toFixed(3)}×)`);
  return out;
}

function pruneInfo(dir) {
  const j = JSON.parse(fs.readFileSync(path.join(dir, "finegates.json"), "utf8"));
  return {
    parametersBefore: j.parametersBefore,
    parametersAfter: j.parametersAfter,
    blockParametersBefore: j.blockParametersBefore,
    blockParametersAfter: j.blockParametersAfter,
    removedAll: 1 - j.parametersAfter / j.parametersBefore,
    removedBlocks: 1 - j.blockParametersAfter / j.blockParametersBefore,
    layers: j.layers,
    modelBytes: H.fileBytes(path.join(dir, "model.safetensors")),
  };
}

// ---------------------------------------------------------------------------------------------

const selected = a.rows ? a.rows.map((n) => ROWS.find((r) => r.name === n) ?? (() => { throw new Error(`unknown row ${n}; --list shows them`); })()) : ROWS.filter((r) => !r.optional);
const results = [];
for (const row of selected) {
  H.log(`=== ${row.name}: ${row.label}`);
  const res = { name: row.name, label: row.label, distHash: H.distHash(), method: row.method, targetSparsity: row.sparsity ?? null, lm: Boolean(row.lm) };
  res.train = await finetune(row);
  const out = res.train.out;
  if (!row.lm) {
    // accuracy of the saved model: the pruned folder (FineGates, full) or base + adapter (LoRA)
    res.gatedAccuracy = res.train.heldOutAfter?.metrics.accuracy ?? null; // in-process, before removal
    if (row.recoverShare) {
      // LoRA on the pruned folder (it carries the classifier head) for the rest of the budget.
      const recoverOut = path.join(a.work, `run-${row.name}-recover`);
      fs.rmSync(recoverOut, { recursive: true, force: true });
      const steps = a.steps - gateSteps(row);
      const r = await H.cli(["finetune", "--method", "lora", "--rank", "8", "--alpha", "16", "--model", out, "--lr", String(a["lr-lora"]), "--warmup", String(Math.min(a.warmup, steps)), "--eval-every", "0", "--checkpoint-every", "0", "--task", "classify", "--data", H.sstTrain, "--eval-data", H.sstDev, "--steps", String(steps), "--batch", String(a.batch), "--max-len", String(a["max-len"]), "--out", recoverOut], { label: `recover ${row.name}` });
      res.recover = H.trainRecord(r, recoverOut, a["lr-lora"]);
    }
    const saved =
      row.method === "lora" ? await evalClassify(H.baseModel, out, "eval accuracy") : row.recoverShare ? await evalClassify(out, path.join(a.work, `run-${row.name}-recover`), "eval accuracy") : await evalClassify(out, null, "eval accuracy");
    res.accuracy = saved.accuracy;
    res.evalCommand = saved.command;
    H.log(`  dev accuracy of the saved model ${(100 * saved.accuracy).toFixed(2)} % (in training, before removal: ${res.gatedAccuracy === null ? "–" : (100 * res.gatedAccuracy).toFixed(2)} %)`);
    if (row.method === "finegates") {
      res.prune = pruneInfo(out);
      const withHead = baseWithHead(row, out);
      res.speedClassify = await timePair("classify", withHead, out);
      res.speedPerplexity = await timePair("perplexity", H.baseModel, out);
    }
  } else {
    res.prune = pruneInfo(out);
    res.heldOut = {
      baseBefore: res.train.heldOutBefore?.metrics.perplexity ?? null,
      gatedAfter: res.train.heldOutAfter?.metrics.perplexity ?? null,
      tokens: res.train.heldOutAfter?.examples ?? null,
    };
    // the pruned folder on the same held-out tokens: heldOutBefore of a 1-step LoRA run with the same split
    try {
      const probe = path.join(a.work, `probe-${row.name}`);
      fs.rmSync(probe, { recursive: true, force: true });
      const r = await H.cli(["finetune", "--method", "lora", "--model", out, "--data", H.wikiValid, "--steps", "1", "--warmup", "0", "--lr", "1e-12", "--batch", String(a["lm-batch"]), "--seq", String(a["lm-seq"]), "--held-out", "0.05", "--eval-every", "0", "--checkpoint-every", "0", "--out", probe], { label: "pruned model on the same held-out tokens" });
      res.heldOut.prunedBefore = r.json.heldOutBefore?.metrics.perplexity ?? null;
      res.heldOut.probeCommand = r.command;
    } catch (e) {
      res.heldOut.prunedBefore = null;
      res.heldOut.probeError = String(e.message).split("\n").slice(-2).join(" ");
      H.log(`  could not score the pruned folder on the held-out tokens: ${res.heldOut.probeError}`);
    }
    H.log(`  held-out perplexity: base ${res.heldOut.baseBefore?.toFixed(3)}, gated after training ${res.heldOut.gatedAfter?.toFixed(3)}, pruned folder ${res.heldOut.prunedBefore?.toFixed(3)}`);
    res.testBase = await evalPpl(H.baseModel, 0, "test perplexity, base");
    res.testPruned = await evalPpl(out, 0, "test perplexity, pruned");
    H.log(`  WikiText-2 test perplexity: base ${res.testBase.perplexity.toFixed(2)} → pruned ${res.testPruned.perplexity.toFixed(2)}`);
    res.speedPerplexity = await timePair("perplexity", H.baseModel, out);
  }
  if (H.distHash() !== res.distHash) {
    res.distChanged = true;
    H.log(`  WARNING: dist/ was rebuilt while ${row.name} ran; re-run it with --rows ${row.name} --merge`);
  }
  results.push(res);
}

// ---------------------------------------------------------------------------------------------

let all = results;
if (a.merge && fs.existsSync(a.out)) {
  const prev = JSON.parse(fs.readFileSync(a.out, "utf8"));
  const names = new Set(results.map((r) => r.name));
  all = [...prev.rows.filter((r) => !names.has(r.name)), ...results];
  all.sort((x, y) => ROWS.findIndex((r) => r.name === x.name) - ROWS.findIndex((r) => r.name === y.name));
}
const byName = Object.fromEntries(all.map((r) => [r.name, r]));
const loraAcc = byName.lora?.accuracy;

const targets = [];
for (const r of all.filter((x) => x.method === "finegates" && !x.lm)) {
  const drop = loraAcc !== undefined ? 100 * (loraAcc - r.accuracy) : NaN;
  targets.push({
    row: r.name,
    removedAll: r.prune.removedAll,
    removedBlocks: r.prune.removedBlocks,
    accuracyDropPoints: drop,
    speedupPerplexity: r.speedPerplexity.speedup,
    speedupClassify: r.speedClassify.speedup,
    removedMet: r.prune.removedAll >= 0.3,
    removedBlocksMet: r.prune.removedBlocks >= 0.3,
    accuracyMet: drop <= 1,
    speedMet: r.speedPerplexity.speedup >= 1.25,
    speedClassifyMet: r.speedClassify.speedup >= 1.25,
  });
}

const wallSeconds = (Date.now() - started) / 1000;
H.writeJson(a.out, {
  experiment: "finegates",
  machine,
  settings: {
    model: H.baseModel,
    train: H.sstTrain,
    dev: H.sstDev,
    steps: a.steps,
    warmup: a.warmup,
    batch: a.batch,
    maxLen: a["max-len"],
    lr: { lora: a["lr-lora"], full: a["lr-full"], finegates: a["lr-finegates"] },
    gateLrScale: 20,
    lm: { data: H.wikiValid, test: H.wikiTest, steps: a["lm-steps"], batch: a["lm-batch"], seq: a["lm-seq"], heldOut: 0.05 },
    speedTokens: a["speed-tokens"],
    repeats: a.repeats,
  },
  invocations: [...(a.merge && fs.existsSync(a.out) ? (JSON.parse(fs.readFileSync(a.out, "utf8")).invocations ?? []) : []), { command: `node bench/finegates-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(), started: machine.date, wallSeconds, distHash: machine.distHash, distHashAtEnd: H.distHash() }],
  command: `node bench/finegates-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  wallSeconds,
  distHashAtEnd: H.distHash(),
  rows: all,
  targets,
});

const cls = all.filter((r) => !r.lm);
const table = H.mdTable(
  ["row", "lr", "dev acc (saved model)", "vs LoRA", "acc before removal", "removed (all / blocks)", "trainable", "train tok/s", "speed: ppl eval", "speed: classify eval", "peak RSS MiB"],
  cls.map((r) => [
    r.label,
    r.train.lr,
    H.fmt.pct(r.accuracy, 2),
    loraAcc !== undefined ? `${r.accuracy >= loraAcc ? "+" : ""}${(100 * (r.accuracy - loraAcc)).toFixed(2)} pt` : "–",
    r.method === "finegates" ? H.fmt.pct(r.gatedAccuracy, 2) : "–",
    r.prune ? `${H.fmt.pct(r.prune.removedAll)} / ${H.fmt.pct(r.prune.removedBlocks)}` : "0 %",
    H.fmt.int(r.train.trainableParameters),
    H.fmt.int(r.train.stepTokensPerS),
    r.speedPerplexity ? H.fmt.x(r.speedPerplexity.speedup) : "–",
    r.speedClassify ? H.fmt.x(r.speedClassify.speedup) : "–",
    H.fmt.int(r.train.peakRssMb),
  ]),
);
process.stdout.write(`${table}\n\n`);
const lm = byName["lm-fg20"];
if (lm) {
  process.stdout.write(
    H.mdTable(
      ["LM row", "test ppl base", "test ppl pruned", "held-out ppl: base / gated (before removal) / pruned folder", "removed (all / blocks)", "trainable", "speed: ppl eval"],
      [[lm.label, H.fmt.f(lm.testBase.perplexity), H.fmt.f(lm.testPruned.perplexity), `${H.fmt.f(lm.heldOut.baseBefore, 3)} / ${H.fmt.f(lm.heldOut.gatedAfter, 3)} / ${H.fmt.f(lm.heldOut.prunedBefore, 3)}`, `${H.fmt.pct(lm.prune.removedAll)} / ${H.fmt.pct(lm.prune.removedBlocks)}`, H.fmt.int(lm.train.trainableParameters), H.fmt.x(lm.speedPerplexity.speedup)]],
    ) + "\n\n",
  );
}
for (const t of targets) {
  const ok = (b) => (b ? "met" : "missed");
  process.stdout.write(
    `${t.row}: removed ${H.fmt.pct(t.removedAll)} of all (${ok(t.removedMet)}, margin ${(100 * (t.removedAll - 0.3)).toFixed(1)} pt) / ${H.fmt.pct(t.removedBlocks)} of the blocks (${ok(t.removedBlocksMet)}); ` +
      `accuracy drop vs LoRA ${t.accuracyDropPoints.toFixed(2)} pt (${ok(t.accuracyMet)}, margin ${(1 - t.accuracyDropPoints).toFixed(2)} pt); ` +
      `speed ${t.speedupPerplexity.toFixed(3)}× perplexity eval (${ok(t.speedMet)}, margin ${(t.speedupPerplexity - 1.25).toFixed(3)}), ${t.speedupClassify.toFixed(3)}× classify eval (${ok(t.speedClassifyMet)})\n`,
  );
}
H.log(`done in ${(wallSeconds / 60).toFixed(1)} min; JSON in ${path.relative(process.cwd(), a.out)}`);
