#!/usr/bin/env node
// Every tuning method at every model shape, against the PyTorch peer in the same run: training
// tokens/s through slimtune's real training loop (train() with AdamW, clipping, the task's batches),
// the ratio to the peer at its best thread count (1 or 2), peak RSS of both, and the achieved
// GFLOPS beside ORT's plain GEMM GFLOPS measured in the same run.
//
//   npx tsc -p tsconfig.build.json && node bench/methods.mjs
//   node bench/methods.mjs --shapes ref-llama-5m,smollm2-135m-shape --methods lora,peqa --steps 3
//
// Shapes: ref-llama-5m (real weights, 8 × 256), smollm2-135m-shape (8 × 256), qwen2.5-0.5b-shape and
// llama-3.2-1b-shape (1 × 512): the shapes' weights are random (normal, std 0.02, unit norms), as the
// peer's --random makes them. A prep child writes each shape's float folder and its 4-bit RTN
// per-channel folder once into bench/.cache/ (outside git); every measured child then loads from disk,
// as a user's run would, so its peak RSS is the training's, not the random initialisation's.
// Methods: full, lora (r 8 on every linear layer), peqa (4-bit per channel), qlora (4-bit base + r 8).
// Full fine-tuning is skipped where weights + gradients + two Adam moments alone pass 16 GB.
// Results: a table on stdout, bench/results/methods.json.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as H from "./lib/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(H.root, "dist");
const cache = path.join(here, ".cache");

const SHAPES = {
  "ref-llama-5m": { dir: path.join(H.shared, "models/ref-llama-5m"), random: false, batch: 8, seq: 256, steps: 5, warmup: 2 },
  "smollm2-135m-shape": { dir: path.join(H.shared, "models/smollm2-135m-shape"), random: true, batch: 8, seq: 256, steps: 3, warmup: 2 },
  "qwen2.5-0.5b-shape": { dir: path.join(H.shared, "models/qwen2.5-0.5b-shape"), random: true, batch: 1, seq: 512, steps: 3, warmup: 1 },
  "llama-3.2-1b-shape": { dir: path.join(H.shared, "models/llama-3.2-1b-shape"), random: true, batch: 1, seq: 512, steps: 3, warmup: 1 },
};
const METHODS = ["full", "lora", "peqa", "qlora"];

const flagSpec = {
  shapes: { type: "list", default: Object.keys(SHAPES), help: "model shapes" },
  methods: { type: "list", default: METHODS, help: "tuning methods" },
  steps: { type: "int", default: 0, help: "timed steps (0: the shape's default)" },
  warmup: { type: "int", default: 0, help: "warm-up steps (0: the shape's default)" },
  threads: { type: "int", default: 2, help: "slimtune's ORT threads" },
  "no-peer": { type: "bool", default: false, help: "skip the PyTorch peer" },
  "peer-threads": { type: "list", default: ["1", "2"], help: "the peer's thread counts (best kept)" },
  merge: { type: "bool", default: false, help: "keep the other shapes' and methods' rows of an existing --out" },
  "checkpoint-activations": { type: "bool", default: false, help: "slimtune recomputes each block in the backward" },
  out: { type: "string", default: path.join(here, "results/methods.json"), help: "results file" },
  child: { type: "string", default: "", help: "(internal) prep | train | gemm" },
  shape: { type: "string", default: "", help: "(internal)" },
  method: { type: "string", default: "", help: "(internal)" },
};

const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

/** Matmul FLOPs of one step: forward 2·N·T; backward dX 2·N·T, plus dW 2·N·T where the weights train. */
function flops(c, B, T, method) {
  let perLayer = 0;
  for (let i = 0; i < c.numLayers; i++) {
    const s = c.layerShapes?.[i] ?? { numHeads: c.numHeads, numKvHeads: c.numKvHeads, intermediateSize: c.intermediateSize };
    perLayer += c.hiddenSize * s.numHeads * c.headDim * 2 + 2 * c.hiddenSize * s.numKvHeads * c.headDim + 3 * c.hiddenSize * s.intermediateSize;
  }
  const matmulParams = perLayer + c.vocabSize * c.hiddenSize;
  const tokens = B * T;
  const attnFwd = 4 * c.numLayers * T * T * c.numHeads * c.headDim * B;
  const backward = method === "full" ? 2 : 1; // dX always; dW only for full fine-tuning
  return { matmulParams, train: (2 + 2 * backward) * matmulParams * tokens + (1 + 2) * attnFwd };
}

function folderOf(shape, kind) {
  const spec = SHAPES[shape];
  if (!spec.random && kind === "float") return spec.dir;
  return path.join(cache, shape, kind);
}

// ---------------------------------------------------------------------------------------------
// children (each prints one JSON line)

async function childPrep(a) {
  const api = await import(path.join(dist, "index.js"));
  const spec = SHAPES[a.shape];
  const floatDir = folderOf(a.shape, "float");
  const qDir = folderOf(a.shape, "q4");
  let model;
  if (!fs.existsSync(path.join(floatDir, "config.json"))) {
    const config = api.readLlamaConfig(spec.dir);
    const rng = new api.Rng(0);
    const weights = new Map();
    for (const [n, shape] of api.llamaParamShapes(config)) {
      const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
      if (n.endsWith("norm.weight")) data.fill(1);
      else rng.fillNormal(data, 0.02);
      weights.set(n, { data, shape });
    }
    model = new api.LlamaModel(config, weights, null);
    H.log(`prep ${a.shape}: writing random float weights to ${floatDir}`);
    model.save(floatDir);
  }
  if (!fs.existsSync(path.join(qDir, "config.json"))) {
    model ??= api.LlamaModel.load(floatDir);
    H.log(`prep ${a.shape}: quantizing to 4 bits per channel → ${qDir}`);
    api.saveQuantizedFolder(qDir, api.quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false }));
  }
  console.log(JSON.stringify({ float: floatDir, q4: qDir }));
}

async function childTrain(a) {
  const api = await import(path.join(dist, "index.js"));
  const spec = SHAPES[a.shape];
  const B = spec.batch;
  const T = spec.seq;
  const steps = a.steps || spec.steps;
  const warmup = a.warmup || spec.warmup;
  const quantized = a.method === "peqa" || a.method === "qlora";
  const t0 = performance.now();
  const base = api.loadBase(folderOf(a.shape, quantized ? "q4" : "float"));
  const loadMs = performance.now() - t0;
  const definition = api.findMethod(a.method);
  const method = definition.create(base, api.withDefaults(definition.flags, a.method === "lora" || a.method === "qlora" ? { rank: 8, alpha: 16 } : {}), { seed: 0 });
  const rng = new api.Rng(1);
  const V = base.model.config.vocabSize;
  const tokens = Int32Array.from({ length: (steps + warmup) * B * (T + 1) + T + 1 }, () => rng.int(V));
  const outDir = fs.mkdtempSync(path.join(cache, `run-${a.method}-`));
  const rows = [];
  let last = performance.now();
  const summary = await api.train(
    method,
    api.lmTask(tokens, { batch: B, seq: T, heldOut: 0, evalTokens: 0 }),
    { ...api.defaultTrainOptions, steps: steps + warmup, lr: 1e-4, warmupSteps: 0, evalEvery: 0, checkpointEvery: 0, outDir, threads: a.threads, checkpointActivations: a["checkpoint-activations"] },
    {
      onStep: (r) => {
        const now = performance.now();
        const stepMs = now - last;
        last = now;
        H.log(`  slimtune ${a.shape} ${a.method} step ${r.step}/${steps + warmup}: ${r1(stepMs)} ms, loss ${r.loss.toFixed(4)}`);
        if (r.step > warmup) rows.push(stepMs);
      },
    },
  );
  fs.rmSync(outDir, { recursive: true, force: true });
  const stepMs = median(rows);
  const f = flops(base.model.config, B, T, a.method);
  console.log(JSON.stringify({
    impl: "slimtune", shape: a.shape, method: a.method, batch: B, seq: T, threads: a.threads, steps, warmup,
    trainable_params: summary.trainableParameters, step_ms_median: r2(stepMs), step_ms_all: rows.map(r2),
    tokens_per_s: r1((B * T) / (stepMs / 1000)), achieved_gflops: r1(f.train / stepMs / 1e6),
    load_ms: Math.round(loadMs), peak_rss_mb: r1(process.resourceUsage().maxRSS / 1024), loss_last: summary.lastLoss,
  }));
}

/** Plain Gemm GFLOPS at the shape's MLP size (forward x·Wᵀ), at slimtune's thread count and at 1. */
async function childGemm(a) {
  const api = await import(path.join(dist, "index.js"));
  const E = api.engine;
  const spec = SHAPES[a.shape];
  const c = api.readLlamaConfig(spec.dir);
  const M = spec.batch * spec.seq;
  const K = c.hiddenSize;
  const N = c.intermediateSize;
  const rng = new api.Rng(2);
  const rand = (n) => {
    const x = new Float32Array(n);
    rng.fillNormal(x, 1);
    return x;
  };
  const out = {};
  for (const threads of [...new Set([a.threads, 1])]) {
    const g = new E.Graph();
    const y = E.gemm(g.input("A", [M, K]), g.input("B", [N, K]), { transB: true });
    const compiled = await E.CompiledGraph.compile(g, { y }, { threads });
    const feeds = { A: { data: rand(M * K), shape: [M, K] }, B: { data: rand(N * K), shape: [N, K] } };
    for (let i = 0; i < 3; i++) await compiled.run(feeds);
    const times = [];
    const t0 = performance.now();
    while (times.length < 10 || performance.now() - t0 < 1000) {
      const s = performance.now();
      await compiled.run(feeds);
      times.push(performance.now() - s);
    }
    out[`t${threads}`] = r1((2 * M * N * K) / median(times) / 1e6);
  }
  console.log(JSON.stringify({ shape: a.shape, M, K, N, gemm_gflops: out }));
}

// ---------------------------------------------------------------------------------------------
// parent

async function runChild(a, kind, shape, method = "") {
  const args = [fileURLToPath(import.meta.url), "--child", kind, "--shape", shape, "--threads", String(a.threads)];
  if (method) args.push("--method", method);
  if (a.steps) args.push("--steps", String(a.steps));
  if (a.warmup) args.push("--warmup", String(a.warmup));
  if (a["checkpoint-activations"]) args.push("--checkpoint-activations");
  const label = `slimtune ${kind} ${shape} ${method}`.trim();
  if (kind !== "prep") await H.waitQuiet({ threshold: 0.25, pollS: 10, maxWaitS: 120, what: label, samples: 1 });
  H.log(label);
  const run = await H.runTimed(process.execPath, args, { echoPrefix: "" });
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (run.code !== 0 || !line) return { error: `exit ${run.code}: ${run.stderr.trim().split("\n").slice(-3).join(" | ")}` };
  return { ...JSON.parse(line), other_cpu_pct: Math.round(100 * run.otherCpu), max_rss_mb_time: r1(run.maxRssMb) };
}

async function peerBest(a, shape, method) {
  const spec = SHAPES[shape];
  const runs = [];
  for (const threads of a["peer-threads"].map(Number)) {
    await H.waitQuiet({ threshold: 0.25, pollS: 10, maxWaitS: 120, what: `peer ${shape} ${method} t${threads}`, samples: 1 });
    try {
      const { json, run } = await H.peer({
        model: spec.dir, random: spec.random, method, bits: 4, rank: 8, batch: spec.batch, seq: spec.seq,
        steps: a.steps || spec.steps, warmup: a.warmup || spec.warmup, threads,
      });
      runs.push({ ...json, other_cpu_pct: Math.round(100 * run.otherCpu) });
    } catch (err) {
      runs.push({ threads, error: String(err.message).split("\n")[0] });
    }
  }
  const ok = runs.filter((r) => r.tokens_per_s);
  return { best: ok.length ? ok.reduce((p, q) => (q.tokens_per_s > p.tokens_per_s ? q : p)) : null, runs };
}

/** Weights, gradients and two Adam moments in float32: what full fine-tuning holds at the least. */
function fullFitsGb(shape) {
  const api = SHAPES[shape];
  const c = JSON.parse(fs.readFileSync(path.join(api.dir, "config.json"), "utf8"));
  const params = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) + c.num_hidden_layers * (4 * c.hidden_size * c.hidden_size + 3 * c.hidden_size * c.intermediate_size);
  return (16 * params) / 1e9;
}

async function parent(a) {
  H.ensureBuilt();
  fs.mkdirSync(cache, { recursive: true });
  const machine = H.machineInfo();
  const previous = a.merge && fs.existsSync(a.out) ? JSON.parse(fs.readFileSync(a.out, "utf8")).rows : [];
  const rows = [];
  const allRows = () => [...previous.filter((p) => !rows.some((r) => r.shape === p.shape && r.method === p.method)), ...rows];
  for (const shape of a.shapes) {
    if (!SHAPES[shape]) throw new Error(`unknown shape ${shape}; known: ${Object.keys(SHAPES).join(", ")}`);
    const prep = await runChild(a, "prep", shape);
    if (prep.error) throw new Error(`prep ${shape}: ${prep.error}`);
    const gemm = await runChild(a, "gemm", shape);
    for (const method of a.methods) {
      const spec = SHAPES[shape];
      const row = { shape, method, batch: spec.batch, seq: spec.seq, gemm_gflops: gemm.gemm_gflops };
      if (method === "full" && fullFitsGb(shape) > 16) {
        row.skipped = `full fine-tuning holds ≥ ${fullFitsGb(shape).toFixed(0)} GB (weights, gradients, two Adam moments in float32) before any activation`;
        rows.push(row);
        H.log(`skip ${shape} full: ${row.skipped}`);
        continue;
      }
      row.slimtune = await runChild(a, "train", shape, method);
      if (!a["no-peer"]) {
        const peer = await peerBest(a, shape, method);
        row.peer = peer.best;
        row.peer_runs = peer.runs;
        if (peer.best && row.slimtune.tokens_per_s) row.ratio = r2(row.slimtune.tokens_per_s / peer.best.tokens_per_s);
      }
      rows.push(row);
      fs.mkdirSync(path.dirname(a.out), { recursive: true });
      fs.writeFileSync(a.out, `${JSON.stringify({ benchmark: "methods", machine, command: `node bench/methods.mjs ${process.argv.slice(2).join(" ")}`.trim(), rows: allRows() }, null, 1)}\n`);
    }
  }
  const table = allRows().map((r) => [
    r.shape, r.method, `${r.batch}×${r.seq}`,
    r.skipped ? "skipped" : (r.slimtune?.tokens_per_s ?? r.slimtune?.error ?? "–"),
    r.peer?.tokens_per_s ?? (r.peer_runs ? "did not fit / failed" : "–"),
    r.peer_runs?.map((p) => `t${p.threads} ${p.tokens_per_s ?? "fail"}`).join(", ") ?? "–",
    r.ratio ?? "–",
    r.slimtune?.peak_rss_mb ?? "–", r.peer?.peak_rss_mb ?? "–",
    r.slimtune?.achieved_gflops ?? "–", r.gemm_gflops ? `${r.gemm_gflops[`t${a.threads}`]} (t1 ${r.gemm_gflops.t1})` : "–",
    `${r.slimtune?.other_cpu_pct ?? "?"}% / ${r.peer?.other_cpu_pct ?? "?"}%`,
  ]);
  console.log(H.mdTable(["shape", "method", "B×T", "slimtune tok/s", "peer tok/s", "peer by threads", "ratio", "slimtune RSS MB", "peer RSS MB", "slimtune GFLOPS", "ORT GEMM GFLOPS", "other load s/p"], table));
  console.log(`\nwrote ${path.relative(H.root, a.out)}; ${machine.cpu}, ${machine.cores} cores, torch ${machine.torch}`);
}

const a = H.parseFlags(process.argv.slice(2), flagSpec, "node bench/methods.mjs [flags]");
const kinds = { prep: childPrep, train: childTrain, gemm: childGemm };
if (a.child) await kinds[a.child](a);
else await parent(a);
