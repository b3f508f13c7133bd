#!/usr/bin/env node
// PEQA experiment (docs/results/peqa.md): ref-llama-5m fine-tuned on WikiText-2 valid with the same
// steps, batch, length and token stream for every trained row, then WikiText-2 test perplexity over
// the whole test file. Rows: the float base, full fine-tuning, LoRA, RTN (no training), QLoRA on RTN
// and NF4 bases, PEQA per channel and with groups of 64. Beside each trained row: slimtune's training
// tokens/s and peak RSS, and the PyTorch peer's (/work/shared/bench/torch_peer.py) for the same method
// and shape, at --threads 1 and 2 (the better one is quoted).
//
//   npx tsc -p tsconfig.build.json
//   node bench/peqa-experiment.mjs                       # everything (~45 min on 2 cores)
//   node bench/peqa-experiment.mjs --rows base,peqa4,lora --steps 50 --no-peer
//   node bench/peqa-experiment.mjs --sweep               # learning-rate choice on a held-out 5 % of valid
//
// Every slimtune step is its own `node dist/cli/main.js … --json` process; timed runs (training, the
// peer) wait for a quiet machine first. Progress goes to stderr; the table to stdout; JSON to
// bench/results/peqa.json (--out). Models and adapters go to --work (default $TMPDIR/slimtune-peqa).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const USAGE = "node bench/peqa-experiment.mjs [--steps 150] [--batch 8] [--seq 256] [--rows a,b] [--no-peer] [--sweep]";
const SPEC = {
  steps: { type: "int", default: 150, help: "optimizer steps of every trained row" },
  batch: { type: "int", default: 8, help: "sequences per step" },
  seq: { type: "int", default: 256, help: "tokens per sequence (and eval --ctx)" },
  warmup: { type: "int", default: 10, help: "linear warm-up steps (the CLI's default; capped at --steps)" },
  rank: { type: "int", default: 8, help: "LoRA/QLoRA rank" },
  alpha: { type: "int", default: 16, help: "LoRA/QLoRA alpha" },
  "lr-full": { type: "float", default: 3e-4, help: "full fine-tuning learning rate (picked by --sweep: 3e-4 beat 1e-4)" },
  "lr-lora": { type: "float", default: 1e-3, help: "LoRA learning rate" },
  "lr-qlora": { type: "float", default: 1e-3, help: "QLoRA learning rate" },
  "lr-peqa": { type: "float", default: 2e-3, help: "PEQA learning rate (picked by --sweep: 2e-3 beat 1e-3 and 5e-3 at 4 bits, tied at 3)" },
  rows: { type: "list", default: null, help: "rows to run (default: all); see --list" },
  list: { type: "bool", default: false, help: "list the rows and exit" },
  "eval-tokens": { type: "int", default: 0, help: "score only the first N test tokens (0: the whole file)" },
  "no-peer": { type: "bool", default: false, help: "skip the PyTorch peer" },
  "peer-steps": { type: "int", default: 10, help: "peer timed steps" },
  "peer-warmup": { type: "int", default: 3, help: "peer warm-up steps" },
  "peer-repeats": { type: "int", default: 1, help: "peer runs per thread count (the fastest is quoted)" },
  "peer-only": { type: "bool", default: false, help: "only (re-)run the peer for --rows and pool it into the existing --out JSON (implies --merge)" },
  "max-wait": { type: "int", default: 1200, help: "seconds to wait for a quiet machine before each timed run" },
  sweep: { type: "bool", default: false, help: "learning-rate sweep on a held-out 5 % of valid instead of the table" },
  "sweep-set": { type: "list", default: null, help: "sweep candidates as row:lr,row:lr (default: full 1e-4/3e-4, lora 1e-3, peqa4 and peqa3 2e-3/5e-3)" },
  merge: { type: "bool", default: false, help: "update only the rows run in an existing --out JSON" },
  work: { type: "string", default: path.join(os.tmpdir(), "slimtune-peqa"), help: "scratch folder for models and adapters" },
  out: { type: "string", default: path.join(H.root, "bench/results/peqa.json"), help: "JSON results" },
};

const a = H.parseFlags(process.argv.slice(2), SPEC, USAGE);

// ---------------------------------------------------------------------------------------------
// the rows

/** Quantized bases: name → quantize flags. */
const BASES = {
  float: null,
  rtn4: ["--bits", "4"],
  rtn3: ["--bits", "3"],
  rtn2: ["--bits", "2"],
  "rtn4-g64": ["--bits", "4", "--group-size", "64"],
  "rtn3-g64": ["--bits", "3", "--group-size", "64"],
  "rtn2-g64": ["--bits", "2", "--group-size", "64"],
  nf4: ["--scheme", "nf4"],
};

const ROWS = [
  { name: "base", label: "fp32 base (no training)", base: "float" },
  { name: "full", label: "full fine-tuning fp32", base: "float", method: "full", peer: { method: "full", bits: 4 } },
  { name: "lora", label: "LoRA fp32 (r 8)", base: "float", method: "lora", peer: { method: "lora", bits: 4 } },
  ...[4, 3, 2].map((b) => ({ name: `rtn${b}`, label: `RTN ${b}-bit per channel`, base: `rtn${b}` })),
  ...[4, 3, 2].map((b) => ({ name: `rtn${b}-g64`, label: `RTN ${b}-bit g64`, base: `rtn${b}-g64` })),
  ...[4, 3, 2].map((b) => ({ name: `qlora${b}`, label: `QLoRA on RTN ${b}-bit per channel`, base: `rtn${b}`, method: "qlora", peer: { method: "qlora", bits: b } })),
  { name: "qlora-nf4", label: "QLoRA on NF4 (g64)", base: "nf4", method: "qlora", peer: { method: "qlora", bits: 4, note: "peer: per-channel RTN 4-bit base (no NF4)" } },
  ...[4, 3, 2].map((b) => ({ name: `peqa${b}`, label: `PEQA ${b}-bit per channel`, base: `rtn${b}`, method: "peqa", peer: { method: "peqa", bits: b } })),
  ...[4, 3, 2].map((b) => ({ name: `peqa${b}-g64`, label: `PEQA ${b}-bit g64`, base: `rtn${b}-g64`, method: "peqa", peer: { method: "peqa", bits: b, note: "peer: per channel (no groups)" } })),
];

if (a.list) {
  for (const r of ROWS) process.stdout.write(`${r.name.padEnd(10)} ${r.label}\n`);
  process.exit(0);
}

const lrOf = (method) => ({ full: a["lr-full"], lora: a["lr-lora"], qlora: a["lr-qlora"], peqa: a["lr-peqa"] })[method];

// ---------------------------------------------------------------------------------------------

H.ensureBuilt();
fs.mkdirSync(a.work, { recursive: true });
H.setLogFile(path.join(a.work, `peqa${a.sweep ? "-sweep" : ""}.log`));
const started = Date.now();
const machine = H.machineInfo();
H.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}, torch ${machine.torch}, commit ${machine.commit}${machine.srcDirty ? " (src/ has uncommitted changes)" : ""}`);

const baseDirs = new Map([["float", H.baseModel]]);
const quantizeRuns = {};
async function baseDir(name) {
  if (baseDirs.has(name)) return baseDirs.get(name);
  const dir = path.join(a.work, `base-${name}`);
  const r = await H.cli(["quantize", "--model", H.baseModel, ...BASES[name], "--out", dir], { label: `quantize ${name}` });
  quantizeRuns[name] = { command: r.command, fileBytes: r.json.fileBytes, bitsPerWeight: r.json.bitsPerWeight, bitsPerWeightModel: r.json.bitsPerWeightModel, groupSize: r.json.groupSize, scheme: r.json.scheme, bits: r.json.bits };
  baseDirs.set(name, dir);
  return dir;
}

function trainArgs(row, model, out, lr, extra = []) {
  const args = ["finetune", "--method", row.method, "--model", model, "--data", H.wikiValid, "--steps", String(a.steps), "--batch", String(a.batch), "--seq", String(a.seq), "--lr", String(lr), "--warmup", String(Math.min(a.warmup, a.steps))];
  if (row.method === "lora" || row.method === "qlora") args.push("--rank", String(a.rank), "--alpha", String(a.alpha));
  args.push(...extra, "--out", out);
  return args;
}

async function train(row, lr, { heldOut = 0, tag = "" } = {}) {
  const model = await baseDir(row.base);
  const out = path.join(a.work, `run-${row.name}${tag}`);
  fs.rmSync(out, { recursive: true, force: true });
  const extra = heldOut > 0 ? ["--held-out", String(heldOut), "--eval-every", "0", "--checkpoint-every", "0"] : ["--held-out", "0", "--eval-every", "0", "--checkpoint-every", "0"];
  const quiet = heldOut > 0 ? null : await H.waitQuiet({ maxWaitS: a["max-wait"], what: `${row.name} training` });
  const r = await H.cli(trainArgs(row, model, out, lr, extra), { label: `train ${row.name} lr ${lr}` });
  const s = r.json;
  const record = H.trainRecord(r, out, lr);
  H.log(`  ${row.name}: ${s.steps} steps, loss ${s.firstLoss?.toFixed(4)} → ${s.lastLoss?.toFixed(4)}, ${Math.round(s.tokensPerSecond)} tok/s over the run, ${Math.round(record.stepTokensPerS)} tok/s median step, peak RSS ${s.peakRssMb.toFixed(0)} MiB`);
  return {
    ...record,
    adapterBytes: H.sumValues(s.files),
    wallS: r.run.wallS,
    otherCpu: r.run.otherCpu,
    quiet,
  };
}

async function evalPpl(model, adapter) {
  const args = ["eval", "--model", model, ...(adapter ? ["--adapter", adapter] : []), "--data", H.wikiTest, "--ctx", String(a.seq)];
  if (a["eval-tokens"] > 0) args.push("--max-tokens", String(a["eval-tokens"]));
  const r = await H.cli(args, { label: "eval" });
  H.log(`  perplexity ${r.json.perplexity.toFixed(3)} over ${r.json.tokens} tokens (${r.json.tokens_per_s.toFixed(0)} tok/s)`);
  return { perplexity: r.json.perplexity, meanNll: r.json.meanNll, tokens: r.json.tokens, seconds: r.json.seconds, command: r.command };
}

// ---------------------------------------------------------------------------------------------
// learning-rate sweep (held-out 5 % of valid; the test file is not looked at)

if (a.sweep) {
  const candidates = a["sweep-set"]
    ? a["sweep-set"].map((c) => {
        const [n, lr] = c.split(":");
        return [n, [Number(lr)]];
      })
    : [
        ["full", [1e-4, 3e-4]],
        ["lora", [1e-3]],
        ["peqa4", [2e-3, 5e-3]],
        ["peqa3", [2e-3, 5e-3]],
      ].filter(([n]) => !a.rows || a.rows.includes(n));
  const sweepFile = a.out.replace(/\.json$/, "-sweep.json");
  const results = a.merge && fs.existsSync(sweepFile) ? JSON.parse(fs.readFileSync(sweepFile, "utf8")).results : [];
  for (const [name, lrs] of candidates) {
    const row = ROWS.find((r) => r.name === name);
    for (const lr of lrs) {
      const t = await train(row, lr, { heldOut: 0.05, tag: `-sweep-${lr}` });
      const at = results.findIndex((r) => r.row === name && r.lr === lr);
      if (at >= 0) results.splice(at, 1);
      results.push({ row: name, lr, heldOutPerplexityBefore: t.heldOutBefore?.metrics.perplexity, heldOutPerplexityAfter: t.heldOutAfter?.metrics.perplexity, lastLoss: t.lastLoss, command: t.command });
      H.log(`  sweep ${name} lr ${lr}: held-out perplexity ${t.heldOutBefore?.metrics.perplexity.toFixed(2)} → ${t.heldOutAfter?.metrics.perplexity.toFixed(2)}`);
      fs.rmSync(t.out, { recursive: true, force: true });
    }
  }
  results.sort((x, y) => x.row.localeCompare(y.row) || x.lr - y.lr);
  const table = H.mdTable(
    ["row", "lr", "held-out ppl before", "held-out ppl after", "last train loss"],
    results.map((r) => [r.row, r.lr, H.fmt.f(r.heldOutPerplexityBefore), H.fmt.f(r.heldOutPerplexityAfter), H.fmt.f(r.lastLoss, 4)]),
  );
  process.stdout.write(`${table}\n`);
  H.writeJson(sweepFile, { experiment: "peqa-lr-sweep", machine, settings: { steps: a.steps, batch: a.batch, seq: a.seq, heldOut: 0.05 }, results, wallSeconds: (Date.now() - started) / 1000 });
  H.log(`sweep done in ${((Date.now() - started) / 60000).toFixed(1)} min`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// the table

const selected = a.rows ? a.rows.map((n) => ROWS.find((r) => r.name === n) ?? (() => { throw new Error(`unknown row ${n}; --list shows them`); })()) : ROWS;
if (a["peer-only"]) a.merge = true;
const prevRows = a.merge && fs.existsSync(a.out) ? JSON.parse(fs.readFileSync(a.out, "utf8")).rows : [];
const results = [];
for (const row of a["peer-only"] ? [] : selected) {
  H.log(`=== ${row.name}: ${row.label}`);
  const model = await baseDir(row.base);
  const res = { name: row.name, label: row.label, distHash: H.distHash(), base: row.base, method: row.method ?? null, modelBytes: H.fileBytes(path.join(model, "model.safetensors")), quantize: quantizeRuns[row.base] ?? null };
  let adapter = null;
  let evalModel = model;
  if (row.method) {
    res.train = await train(row, lrOf(row.method));
    if (row.method === "full") evalModel = res.train.out;
    else adapter = res.train.out;
  }
  res.eval = await evalPpl(evalModel, adapter);
  if (H.distHash() !== res.distHash) {
    res.distChanged = true;
    H.log(`  WARNING: dist/ was rebuilt while ${row.name} ran; re-run it with --rows ${row.name} --merge`);
  }
  results.push(res);
}

// the PyTorch peer: per distinct (method, bits), --peer-repeats runs at 1 and at 2 threads
const peerKey = (p) => `${p.method}-${p.bits}`;
const newPeerRuns = [];
if (!a["no-peer"]) {
  const done = new Set();
  for (const row of selected) {
    if (!row.peer || done.has(peerKey(row.peer))) continue;
    done.add(peerKey(row.peer));
    for (let rep = 0; rep < a["peer-repeats"]; rep++) {
      for (const threads of [1, 2]) {
        const quiet = await H.waitQuiet({ maxWaitS: a["max-wait"], what: `peer ${peerKey(row.peer)} t${threads}` });
        const p = await H.peer({ method: row.peer.method, bits: row.peer.bits, rank: a.rank, batch: a.batch, seq: a.seq, steps: a["peer-steps"], warmup: a["peer-warmup"], threads });
        newPeerRuns.push({ key: peerKey(row.peer), at: new Date().toISOString(), ...p.json, command: p.command, otherCpu: p.run.otherCpu, quiet });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// merge, pool the peer's runs (with --merge, earlier runs of the same method and bits count too:
// the best, i.e. the fastest, is quoted), targets, output

let all = results;
if (a.merge) {
  const names = new Set(results.map((r) => r.name));
  all = [...prevRows.filter((r) => !names.has(r.name)), ...results];
  all.sort((x, y) => ROWS.findIndex((r) => r.name === x.name) - ROWS.findIndex((r) => r.name === y.name));
}
const pool = new Map();
const addRun = (key, run) => {
  const list = pool.get(key) ?? [];
  if (!list.some((x) => x.command === run.command && x.tokens_per_s === run.tokens_per_s && x.peak_rss_mb === run.peak_rss_mb)) list.push({ key, ...run });
  pool.set(key, list);
};
for (const r of prevRows) {
  if (!r.peer) continue;
  for (const run of [...(r.peer.allRuns ?? []), ...Object.values(r.peer.runs ?? {})]) addRun(peerKey(r.peer), run);
}
for (const run of newPeerRuns) addRun(run.key, run);
for (const res of all) {
  const row = ROWS.find((r) => r.name === res.name);
  if (!row.peer || !res.train) continue;
  const list = pool.get(peerKey(row.peer));
  if (!list?.length) continue;
  const best = list.reduce((x, y) => (y.tokens_per_s > x.tokens_per_s ? y : x));
  res.peer = { method: row.peer.method, bits: row.peer.bits, note: row.peer.note ?? null, threads: best.threads, tokensPerS: best.tokens_per_s, stepMs: best.step_ms_median, peakRssMb: best.peak_rss_mb, trainableParameters: best.trainable_params, runsPooled: list.length, allRuns: list };
  res.ratio = res.train.stepTokensPerS / best.tokens_per_s;
}
const byName = Object.fromEntries(all.map((r) => [r.name, r]));

const targets = [];
for (const r of all.filter((x) => x.ratio !== undefined)) {
  targets.push({ target: `${r.name}: step tokens/s ≥ 1.0× the peer (aim 1.5×)`, value: r.ratio, met: r.ratio >= 1.0, aimMet: r.ratio >= 1.5, margin: r.ratio - 1.0 });
}
if (byName.peqa4?.train && byName.lora?.peer) {
  // against the smallest peak RSS of any pooled peer LoRA run (the conservative reading)
  const peerRss = Math.min(...(byName.lora.peer.allRuns ?? [{ peak_rss_mb: byName.lora.peer.peakRssMb }]).map((r) => r.peak_rss_mb));
  const v = byName.peqa4.train.peakRssMb / peerRss;
  targets.push({ target: "PEQA-4 peak RSS ≤ 0.5× the peer's LoRA-fp32 peak RSS (smallest of its runs)", value: v, met: v <= 0.5, margin: 0.5 - v, detail: `${byName.peqa4.train.peakRssMb.toFixed(0)} MiB vs ${peerRss} MiB = ${v.toFixed(3)}×` });
}
if (byName.peqa4 && byName.lora) {
  const v = byName.peqa4.eval.perplexity / byName.lora.eval.perplexity - 1;
  targets.push({ target: "PEQA-4 perplexity within 3 % of LoRA-fp32", value: v, met: v <= 0.03, margin: 0.03 - v, detail: `${byName.peqa4.eval.perplexity.toFixed(2)} vs ${byName.lora.eval.perplexity.toFixed(2)}` });
}
if (byName.peqa3 && byName.qlora3) {
  const v = byName.peqa3.eval.perplexity / byName.qlora3.eval.perplexity - 1;
  targets.push({ target: "PEQA beats QLoRA at 3 bits (per-channel RTN base)", value: v, met: v < 0, margin: -v, detail: `${byName.peqa3.eval.perplexity.toFixed(2)} vs ${byName.qlora3.eval.perplexity.toFixed(2)}` });
}

const wallSeconds = (Date.now() - started) / 1000;
H.writeJson(a.out, {
  experiment: "peqa",
  machine,
  settings: { model: H.baseModel, train: H.wikiValid, test: H.wikiTest, steps: a.steps, warmup: Math.min(a.warmup, a.steps), batch: a.batch, seq: a.seq, tokensPerRow: a.steps * a.batch * a.seq, rank: a.rank, alpha: a.alpha, lr: { full: a["lr-full"], lora: a["lr-lora"], qlora: a["lr-qlora"], peqa: a["lr-peqa"] }, evalCtx: a.seq, evalTokens: a["eval-tokens"] || "all", peerSteps: a["peer-steps"], peerWarmup: a["peer-warmup"], threads: "ONNX Runtime default (all cores)" },
  invocations: [...(a.merge && fs.existsSync(a.out) ? (JSON.parse(fs.readFileSync(a.out, "utf8")).invocations ?? []) : []), { command: `node bench/peqa-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(), started: machine.date, wallSeconds, distHash: machine.distHash, distHashAtEnd: H.distHash() }],
  command: `node bench/peqa-experiment.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  wallSeconds,
  distHashAtEnd: H.distHash(),
  rows: all,
  targets,
});

const lora = byName.lora?.eval.perplexity;
const table = H.mdTable(
  ["row", "lr", "test ppl", "vs LoRA", "trainable", "model bytes", "adapter bytes", "slimtune tok/s (step / run)", "peer tok/s (threads)", "slimtune / peer", "RSS slimtune / peer MiB", "other CPU"],
  all.map((r) => [
    r.label,
    r.train?.lr ?? "–",
    H.fmt.f(r.eval.perplexity),
    lora ? `${r.eval.perplexity >= lora ? "+" : ""}${(100 * (r.eval.perplexity / lora - 1)).toFixed(1)} %` : "–",
    H.fmt.int(r.train?.trainableParameters ?? 0),
    H.fmt.int(r.modelBytes),
    r.train ? H.fmt.int(r.train.adapterBytes) : "–",
    r.train ? `${H.fmt.int(r.train.stepTokensPerS)} / ${H.fmt.int(r.train.runTokensPerS)}` : "–",
    r.peer ? `${H.fmt.int(r.peer.tokensPerS)} (t${r.peer.threads})${r.peer.note ? " †" : ""}` : "–",
    r.ratio !== undefined ? H.fmt.x(r.ratio) : "–",
    r.train ? `${H.fmt.int(r.train.peakRssMb)} / ${r.peer ? H.fmt.int(r.peer.peakRssMb) : "–"}` : "–",
    r.train ? H.fmt.pct(r.train.otherCpu, 0) : "–",
  ]),
);
process.stdout.write(`${table}\n\n`);
for (const t of targets) process.stdout.write(`${t.met ? "MET   " : "MISSED"} ${t.target}: ${t.detail ?? (typeof t.value === "number" ? t.value.toFixed(3) : t.value)} (margin ${t.margin >= 0 ? "+" : ""}${t.margin.toFixed(3)})${t.aimMet !== undefined ? (t.aimMet ? ", aim 1.5× met" : ", aim 1.5× missed") : ""}\n`);
H.log(`done in ${(wallSeconds / 60).toFixed(1)} min; JSON in ${path.relative(process.cwd(), a.out)}`);
