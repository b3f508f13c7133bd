#!/usr/bin/env node
// Training-step benchmark: slimtune's full fine-tuning step (train graph run + AdamW) and eval
// forward against the PyTorch peer (/work/shared/bench/torch_peer.py), in one run, on
// ref-llama-5m (real weights) and the SmolLM2-135M shape (random weights).
//
//   npx tsc -p tsconfig.build.json && node bench/train-step.mjs
//   node bench/train-step.mjs --models ref-llama-5m --steps 5 --warmup 2 --no-profile
//
// Flags: --batch 8 --seq 256 --threads 2 (slimtune's ORT threads; the peer runs at 1 and 2)
//   --models ref-llama-5m,smollm2-135m-shape --steps N --warmup N (default per model: 10/3 for
//   ref-llama-5m, 3/2 for the SmolLM shape, whose first two runs fault in ~15 GB of fresh memory)
//   --fresh-grads (take ORT's fresh gradient arrays, as before session 28, instead of having ORT
//   write them into buffers kept across steps, as train() now does)
//   --arena --no-collect (train() runs a step past 1 GiB of weights lean: its session without ORT's
//   CPU memory arena and a garbage collection before each step; these force the arena on and the
//   collection off, as before session 28)
//   --no-forward (only the train step) --peer-threads 1,2 (the peer's thread counts; best kept)
//   --no-peer --no-profile --profile-only --profile-model NAME --profile-options JSON (extra ORT session options
//   for the profiled run, e.g. '{"enableMemPattern":false}') --out FILE (the peer's python: SLIMTUNE_PYTHON, default /usr/bin/python3)
//   --quiet PCT --max-wait S (this VM's cores are shared with other sessions: before each
//   measurement wait up to 60 s, S in all (default 240), for others to use < PCT % (default 25)).
// Every slimtune measurement runs in its own child node process (this script with --child), so
// its peak RSS (process.resourceUsage().maxRSS) is its own, like the peer's.
// Results: a table on stdout, bench/results/train-step.json and train-step-profile.json (the raw
// ORT trace goes to the OS temp folder).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as H from "./lib/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const { root, shared } = H;
const dist = path.join(root, "dist");

const MODELS = {
  "ref-llama-5m": { dir: path.join(shared, "models/ref-llama-5m"), random: false, steps: 10, warmup: 3 },
  "smollm2-135m-shape": { dir: path.join(shared, "models/smollm2-135m-shape"), random: true, steps: 3, warmup: 2 },
  // 494 M parameters: run it at --batch 1 --seq 512 (weights, gradients and two moments are 8 GB alone).
  "qwen2.5-0.5b-shape": { dir: path.join(shared, "models/qwen2.5-0.5b-shape"), random: true, steps: 2, warmup: 1 },
};

// ---------------------------------------------------------------------------------------------
// flags

function parseArgs(argv) {
  const a = { forward: true, peerThreads: [1, 2], quiet: 25, maxWait: 240, batch: 8, seq: 256, threads: 2, models: Object.keys(MODELS), steps: null, warmup: null, peer: true, profile: true, profileModel: null, out: path.join(here, "results/train-step.json"), child: null, model: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    const int = () => {
      const x = Number(v());
      if (!Number.isInteger(x) || x < 0) throw new Error(`${k} needs a non-negative integer`);
      return x;
    };
    switch (k) {
      case "--batch": a.batch = int(); break;
      case "--seq": a.seq = int(); break;
      case "--threads": a.threads = int(); break;
      case "--steps": a.steps = int(); break;
      case "--warmup": a.warmup = int(); break;
      case "--models": a.models = v().split(",").filter(Boolean); break;
      case "--no-peer": a.peer = false; break;
      case "--no-profile": a.profile = false; break;
      case "--fresh-grads": a.freshGrads = true; break;
      case "--no-forward": a.forward = false; break;
      case "--arena": a.arena = true; break;
      case "--no-collect": a.noCollect = true; break;
      case "--peer-threads": a.peerThreads = v().split(",").map(Number); break;
      case "--profile-only": a.profileOnly = true; break;
      case "--help": case "-h":
        {
          const lines = fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1);
          console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).map((l) => l.slice(3)).join("\n"));
        }
        process.exit(0);
      case "--profile-model": a.profileModel = v(); break;
      case "--profile-options": a.profileOptions = v(); break;
      case "--out": a.out = path.resolve(v()); break;
      case "--child": a.child = v(); break;
      case "--quiet": a.quiet = int(); break;
      case "--max-wait": a.maxWait = int(); break;
      case "--model": a.model = v(); break;
      default: throw new Error(`unknown flag ${k}`);
    }
  }
  for (const m of a.models) if (!MODELS[m]) throw new Error(`unknown model ${m}; known: ${Object.keys(MODELS).join(", ")}`);
  return a;
}

const { cpuStat, foreignLoad, log } = H;
/** The middle element, as torch_peer.py takes its median (no averaging of the two middle ones). */
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;

// ---------------------------------------------------------------------------------------------
// the library, from dist/

async function lib() {
  // The public API only, so moving files inside src/ never breaks the benchmark.
  const api = await import(path.join(dist, "index.js"));
  const lm = await import(path.join(dist, "models/llama/lm-graphs.js"));
  return { ...api.engine, ...api, IDS: lm.IDS, TARGETS: lm.TARGETS, gradName: lm.gradName };
}

/** ref-llama-5m from its folder; the SmolLM shape from config.json with N(0, 0.02²) weights (seeded) and unit norms. */
function loadModel(L, name) {
  const spec = MODELS[name];
  if (!spec.random) return L.LlamaModel.load(spec.dir);
  const config = L.readLlamaConfig(spec.dir);
  const rng = new L.Rng(0);
  const weights = new Map();
  for (const [n, shape] of L.llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (n.endsWith("norm.weight")) data.fill(1);
    else rng.fillNormal(data, 0.02);
    weights.set(n, { data, shape });
  }
  return new L.LlamaModel(config, weights, null);
}

/** FLOPs of one step, the standard estimate (full T² attention, which both implementations compute). */
function flopModel(c, batch, seq) {
  const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: KV, headDim: D, vocabSize: V, numLayers: L } = c;
  const perLayer = C * H * D + 2 * C * KV * D + H * D * C + 3 * C * F; // q, k, v, o, gate, up, down
  const matmulParams = L * perLayer + V * C; // + LM head (the embedding lookup is a gather, not a matmul)
  const tokens = batch * seq;
  const attnFwd = 4 * L * seq * seq * H * D * batch; // QKᵀ and AV: 2·T²·H·D each per sequence
  return {
    matmulParams,
    forward: 2 * matmulParams * tokens + attnFwd,
    train: 6 * matmulParams * tokens + 3 * attnFwd,
    formula: "train = 6·N_mm·B·T + 12·L·T²·H·D·B, forward = 2·N_mm·B·T + 4·L·T²·H·D·B; N_mm = L·(C·H·D + 2·C·KV·D + H·D·C + 3·C·F) + V·C (q,k,v,o,gate,up,down, LM head; embedding gather excluded)",
  };
}

function randomTokens(rng, n, V) {
  const a = new BigInt64Array(n);
  for (let i = 0; i < n; i++) a[i] = BigInt(rng.int(V));
  return a;
}

/** input_ids [B,T] and targets [B·T] from a fresh random [B, T+1] window, as the peer draws them. */
function batchFeeds(rng, B, T, V) {
  const raw = randomTokens(rng, B * (T + 1), V);
  const ids = new BigInt64Array(B * T);
  const targets = new BigInt64Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = raw[b * (T + 1) + t];
      targets[b * T + t] = raw[b * (T + 1) + t + 1];
    }
  }
  return { ids, targets };
}

// ---------------------------------------------------------------------------------------------
// children: each prints one JSON line on stdout

function buildTrain(L, model, B, T) {
  const method = L.fullFineTuning(model);
  const g = new L.Graph();
  const wrt = [...method.trainable.keys()];
  const built = L.buildLmTrainGraph(model.config, method.params(g), B, T, wrt);
  return { method, wrt, ...built };
}

/** Resident memory now and the process's peak so far, MB. */
function memNow() {
  const m = process.memoryUsage();
  return { rss_mb: r1(m.rss / 2 ** 20), peak_rss_mb: r1(process.resourceUsage().maxRSS / 1024), js_array_buffers_mb: r1(m.arrayBuffers / 2 ** 20) };
}

async function childTrain(a) {
  const L = await lib();
  const clip = await import(path.join(dist, "train/clip.js"));
  const { collectGarbage } = await import(path.join(dist, "engine/collect-garbage.js"));
  const { leanStep } = await import(path.join(dist, "train/loop.js"));
  const spec = MODELS[a.model];
  const B = a.batch, T = a.seq;
  const memory = { start: memNow() };
  let t0 = performance.now();
  const model = loadModel(L, a.model);
  const loadMs = performance.now() - t0;
  memory.weights_loaded = memNow();
  t0 = performance.now();
  const { method, wrt, graph, outputs } = buildTrain(L, model, B, T);
  const buildMs = performance.now() - t0;
  t0 = performance.now();
  // As train() does: a lean step (no ORT arena, a collection before each step) past 1 GiB of weights.
  const lean = leanStep(model.parameterCount * 4);
  const arena = a.arena || !lean;
  const compiled = await L.CompiledGraph.compile(graph, outputs, { threads: a.threads, memoryArena: arena });
  const compileMs = performance.now() - t0;
  memory.compiled = memNow();
  const paramArrays = new Map([...method.trainable].map(([n, p]) => [n, p.data]));
  const opt = new L.AdamW(paramArrays, { weightDecay: 0.01, decay: () => true }); // torch.optim.AdamW defaults, as the peer
  const rng = new L.Rng(1);
  const V = model.config.vocabSize;
  const steps = a.steps ?? spec.steps, warmup = a.warmup ?? spec.warmup;
  // As train() does: ORT writes the gradients into these, every step (unless --fresh-grads).
  const into = a.freshGrads ? {} : Object.fromEntries(wrt.map((n) => {
    const p = method.trainable.get(n);
    return [L.gradName(n), { data: new Float32Array(p.data.length), shape: p.shape }];
  }));
  const collect = lean && !a.noCollect;
  const rows = [];
  for (let s = 0; s < warmup + steps; s++) {
    const g0 = performance.now();
    if (collect) collectGarbage();
    const gcMs = performance.now() - g0;
    const { ids, targets } = batchFeeds(rng, B, T, V);
    const feeds = { [L.IDS]: { data: ids, shape: [B, T] }, [L.TARGETS]: { data: targets, shape: [B * T] } };
    for (const [n, p] of method.trainable) feeds[n] = p;
    const c0 = cpuStat();
    const u0 = process.resourceUsage();
    const s0 = performance.now();
    const out = await compiled.run(feeds, compiled.outputNames, into);
    const s1 = performance.now();
    const u1 = process.resourceUsage();
    const afterRun = memNow();
    const grads = new Map(wrt.map((n) => [n, out[L.gradName(n)].data]));
    // As train() does: the global norm (logged, and clipping's factor), then AdamW applying the clip.
    const norm = clip.globalNorm(grads.values());
    const s2 = performance.now();
    opt.step(grads, 1e-4, clip.clipScale(norm, 1));
    const s3 = performance.now();
    const u3 = process.resourceUsage();
    const afterAdam = memNow();
    const foreign = foreignLoad(c0, cpuStat(), (u3.userCPUTime + u3.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000);
    const row = {
      runMs: s1 - s0, normMs: s2 - s1, adamMs: s3 - s2, gcMs, stepMs: s3 - s0 + gcMs, loss: out.loss.data[0],
      // during session.run: CPU time in user and kernel mode, and minor page faults (first touches of fresh memory)
      runUserMs: (u1.userCPUTime - u0.userCPUTime) / 1000, runSysMs: (u1.systemCPUTime - u0.systemCPUTime) / 1000, runFaults: u1.minorPageFault - u0.minorPageFault,
      stepCpuMs: (u3.userCPUTime + u3.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000,
      afterRun, afterAdam, foreign,
    };
    log(`  slimtune ${a.model} train ${s < warmup ? "warm-up" : "step"} ${s + 1}/${warmup + steps}: ${r1(row.stepMs)} ms (run ${r1(row.runMs)} [cpu user ${Math.round(row.runUserMs)} sys ${Math.round(row.runSysMs)} ms, ${row.runFaults} page faults], norm ${r1(row.normMs)}, adamw ${r1(row.adamMs)}, collection ${r1(row.gcMs)}; step CPU ${Math.round(row.stepCpuMs)} ms), loss ${row.loss.toFixed(4)}; RSS after run ${afterRun.rss_mb} MB (JS buffers ${afterRun.js_array_buffers_mb}), after AdamW ${afterAdam.rss_mb}, peak ${afterAdam.peak_rss_mb}; other processes ${Math.round(100 * foreign)}% of the CPU`);
    if (s >= warmup) rows.push(row);
  }
  const stepMs = median(rows.map((r) => r.stepMs));
  memory.first_timed_step = { after_run: rows[0].afterRun, after_adamw: rows[0].afterAdam };
  console.log(JSON.stringify({
    impl: "slimtune", mode: "train-step", model: a.model, batch: B, seq: T, threads: a.threads, steps, warmup,
    gradients: a.freshGrads ? "fresh ORT outputs" : "written into kept buffers", ort_arena: arena, collect_each_step: collect, trainable_params: model.parameterCount, graph_nodes: graph.nodes.length, onnx_bytes: compiled.onnxBytes,
    step_ms_median: r2(stepMs), step_ms_min: r2(Math.min(...rows.map((r) => r.stepMs))), run_ms_median: r2(median(rows.map((r) => r.runMs))),
    norm_ms_median: r2(median(rows.map((r) => r.normMs))), gc_ms_median: r2(median(rows.map((r) => r.gcMs))), adamw_ms_median: r2(median(rows.map((r) => r.adamMs))),
    step_cpu_ms_median: Math.round(median(rows.map((r) => r.stepCpuMs))),
    tokens_per_s: r1((B * T) / (stepMs / 1000)),
    load_ms: Math.round(loadMs), build_ms: Math.round(buildMs), compile_ms: Math.round(compileMs),
    peak_rss_mb: r1(process.resourceUsage().maxRSS / 1024), memory, loss_first: r2(rows[0].loss), loss_last: r2(rows.at(-1).loss),
    step_ms_all: rows.map((r) => r2(r.stepMs)),
    run_cpu_user_ms_median: Math.round(median(rows.map((r) => r.runUserMs))), run_cpu_sys_ms_median: Math.round(median(rows.map((r) => r.runSysMs))),
    run_page_faults_median: median(rows.map((r) => r.runFaults)),
    foreign_cpu_load_pct: rows.map((r) => Math.round(100 * r.foreign)),
  }));
  await compiled.release();
}

async function childForward(a) {
  const L = await lib();
  const spec = MODELS[a.model];
  const B = a.batch, T = a.seq;
  const model = loadModel(L, a.model);
  let t0 = performance.now();
  const g = new L.Graph();
  const { graph, outputs } = L.buildLmScoreGraph(model.config, new L.DenseParams(g, model.weights, new Set()), B, T);
  const compiled = await L.CompiledGraph.compile(graph, outputs, { threads: a.threads });
  const compileMs = performance.now() - t0;
  const rng = new L.Rng(1);
  const steps = a.steps ?? spec.steps, warmup = a.warmup ?? spec.warmup;
  const times = [];
  const foreignAll = [];
  let loss = NaN;
  for (let s = 0; s < warmup + steps; s++) {
    const { ids, targets } = batchFeeds(rng, B, T, model.config.vocabSize);
    const c0 = cpuStat();
    const u0 = process.resourceUsage();
    const s0 = performance.now();
    const out = await compiled.run({ [L.IDS]: { data: ids, shape: [B, T] }, [L.TARGETS]: { data: targets, shape: [B * T] } });
    let sum = 0; // the mean NLL, as the peer's cross_entropy does
    for (const x of out.nll.data) sum += x;
    loss = sum / out.nll.data.length;
    const ms = performance.now() - s0;
    const u1 = process.resourceUsage();
    const foreign = foreignLoad(c0, cpuStat(), (u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000);
    log(`  slimtune ${a.model} forward ${s < warmup ? "warm-up" : "step"} ${s + 1}/${warmup + steps}: ${r1(ms)} ms, loss ${loss.toFixed(4)}; other processes ${Math.round(100 * foreign)}% of the CPU`);
    if (s >= warmup) {
      times.push(ms);
      foreignAll.push(Math.round(100 * foreign));
    }
  }
  const ms = median(times);
  console.log(JSON.stringify({
    impl: "slimtune", mode: "forward", model: a.model, batch: B, seq: T, threads: a.threads, steps, warmup,
    step_ms_median: r2(ms), step_ms_min: r2(Math.min(...times)), tokens_per_s: r1((B * T) / (ms / 1000)), compile_ms: Math.round(compileMs),
    onnx_bytes: compiled.onnxBytes, peak_rss_mb: r1(process.resourceUsage().maxRSS / 1024), loss_last: r2(loss),
    step_ms_all: times.map(r2), foreign_cpu_load_pct: foreignAll,
  }));
  await compiled.release();
}

/** Plain Gemm GFLOPS for the model's MLP shapes: forward x·Wᵀ, input-grad dy·W, weight-grad dyᵀ·x. */
async function childGemm(a) {
  const L = await lib();
  const c = L.readLlamaConfig(MODELS[a.model].dir);
  const M = a.batch * a.seq, K = c.hiddenSize, N = c.intermediateSize;
  const rng = new L.Rng(2);
  const rand = (n) => {
    const x = new Float32Array(n);
    rng.fillNormal(x, 1);
    return x;
  };
  const cases = [
    { name: "fwd  x·Wᵀ", a: [M, K], b: [N, K], opts: { transB: true } },
    { name: "dX   dy·W", a: [M, N], b: [N, K], opts: {} },
    { name: "dW   dyᵀ·x", a: [M, N], b: [M, K], opts: { transA: true } },
  ];
  const results = [];
  for (const threads of [...new Set([a.threads, 1])]) {
    for (const cs of cases) {
      const g = new L.Graph();
      const A = g.input("A", cs.a);
      const Bv = g.input("B", cs.b);
      const y = L.gemm(A, Bv, cs.opts);
      const compiled = await L.CompiledGraph.compile(g, { y }, { threads });
      const feeds = { A: { data: rand(cs.a[0] * cs.a[1]), shape: cs.a }, B: { data: rand(cs.b[0] * cs.b[1]), shape: cs.b } };
      // Warm up for >= 0.3 s, then time >= 20 runs and >= 1.5 s.
      const times = [];
      const w0 = performance.now();
      for (let i = 0; i < 5 || performance.now() - w0 < 300; i++) await compiled.run(feeds);
      const m0 = performance.now();
      while (times.length < 20 || performance.now() - m0 < 1500) {
        const t0 = performance.now();
        await compiled.run(feeds);
        times.push(performance.now() - t0);
      }
      const ms = median(times);
      const flops = 2 * M * N * K;
      results.push({
        op: cs.name, shape: `${fmt(cs.a)}${cs.opts.transA ? "ᵀ" : ""} × ${fmt(cs.b)}${cs.opts.transB ? "ᵀ" : ""}`, threads, runs: times.length,
        ms: r2(ms), gflops: r1(flops / ms / 1e6), gflops_best: r1(flops / Math.min(...times) / 1e6),
      });
      await compiled.release();
    }
  }
  console.log(JSON.stringify({ model: a.model, M, K, N, results }));
}
const fmt = (s) => `[${s.join(", ")}]`;

/**
 * The SmolLM-shape train step under ORT's profiler. CompiledGraph does not expose profiling, so
 * this is a local copy of its compile step (same session options) using onnxruntime-node directly.
 */
async function childProfile(a) {
  const L = await lib();
  const ort = (await import("onnxruntime-node")).default;
  const B = a.batch, T = a.seq;
  const model = loadModel(L, a.model);
  const { method, graph, outputs } = buildTrain(L, model, B, T);
  // Names toOnnxBytes gives the nodes (n<i>_<type> over live nodes in graph order), tagged forward/backward.
  const lossNode = outputs.loss.producer;
  const live = liveNodes(graph, Object.values(outputs));
  const lossIndex = graph.nodes.indexOf(lossNode);
  const phaseOf = new Map();
  const nodeIndex = new Map(graph.nodes.map((n, i) => [n, i]));
  live.forEach((n, i) => {
    const phase = nodeIndex.get(n) <= lossIndex ? "forward" : "backward";
    const gemmRole = n.op.type !== "Gemm" ? "" : n.attrs.transA ? " transA: weight grad dyᵀ·x" : n.attrs.transB ? (phase === "forward" ? " transB: x·Wᵀ" : " transB") : phase === "backward" ? " input grad dy·W" : "";
    phaseOf.set(`n${i}_${n.op.type}`, { phase, detail: gemmRole });
  });
  const bytes = L.toOnnxBytes(graph, outputs);
  const prefix = path.join(os.tmpdir(), `slimtune-profile-${process.pid}`);
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
    enableProfiling: true, profileFilePrefix: prefix, ...(a.profileOptions ? JSON.parse(a.profileOptions) : {}),
  });
  const rng = new L.Rng(1);
  const wall = [];
  const runs = 3; // two warm-ups (ORT plans its memory pattern after the first run; the second still faults it in), one measured
  let foreign = 0;
  for (let s = 0; s < runs; s++) {
    const { ids, targets } = batchFeeds(rng, B, T, model.config.vocabSize);
    const feeds = { [L.IDS]: new ort.Tensor("int64", ids, [B, T]), [L.TARGETS]: new ort.Tensor("int64", targets, [B * T]) };
    for (const [n, p] of method.trainable) feeds[n] = new ort.Tensor("float32", p.data, p.shape);
    const c0 = cpuStat();
    const u0 = process.resourceUsage();
    const t0 = performance.now();
    await session.run(feeds);
    wall.push(performance.now() - t0);
    const u1 = process.resourceUsage();
    foreign = foreignLoad(c0, cpuStat(), (u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000);
    log(`  profile ${a.model} run ${s + 1}/${runs}: ${r1(wall.at(-1))} ms; other processes ${Math.round(100 * foreign)}% of the CPU`);
  }
  session.endProfiling();
  await session.release();
  const file = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(path.basename(prefix))).map((f) => path.join(os.tmpdir(), f)).sort().at(-1);
  if (!file) throw new Error("ORT wrote no profile file");
  const events = JSON.parse(fs.readFileSync(file, "utf8"));
  // The raw trace (~13 MB, chrome://tracing format) stays out of the repository.
  const trace = path.join(os.tmpdir(), `${path.basename(a.out, ".json")}-profile.trace.json`);
  fs.renameSync(file, trace);
  const summary = summariseProfile(events, phaseOf, wall.at(-1));
  summary.model = a.model;
  summary.threads = a.threads;
  summary.batch = B;
  summary.seq = T;
  summary.graph_nodes_live = live.length;
  summary.trace_file = trace;
  summary.foreign_cpu_load_pct = Math.round(100 * foreign);
  summary.session_options_extra = a.profileOptions ? JSON.parse(a.profileOptions) : {};
  summary.run_wall_ms_all = wall.map(r1);
  summary.peak_rss_mb = r1(process.resourceUsage().maxRSS / 1024);
  console.log(JSON.stringify(summary));
}

function liveNodes(graph, outs) {
  const live = new Set();
  const stack = outs.slice();
  while (stack.length > 0) {
    const node = stack.pop().producer;
    if (!node || live.has(node)) continue;
    live.add(node);
    stack.push(...node.inputs);
  }
  return graph.nodes.filter((n) => live.has(n));
}

function summariseProfile(events, phaseOf, wallMs) {
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const last = runs.at(-1);
  const inLast = (e) => !last || (e.ts >= last.ts && e.ts <= last.ts + last.dur);
  const kernels = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && inLast(e));
  const total = kernels.reduce((s, e) => s + e.dur, 0);
  const byOp = new Map(), byOpPhase = new Map(), bySig = new Map(), byPhase = new Map();
  const bump = (m, k, e, extra = {}) => {
    const x = m.get(k) ?? { ...extra, us: 0, count: 0 };
    x.us += e.dur;
    x.count++;
    m.set(k, x);
  };
  for (const e of kernels) {
    const node = e.name.slice(0, -"_kernel_time".length);
    const op = e.args?.op_name ?? "?";
    const { phase, detail } = phaseOf.get(node) ?? { phase: "fused/renamed by ORT", detail: "" };
    const shapes = (e.args?.input_type_shape ?? []).map((o) => fmt(Object.values(o)[0])).join(" ");
    bump(byOp, op, e, { op });
    bump(byOpPhase, `${op}${detail} ${phase}`, e, { op: `${op}${detail}`, phase });
    bump(bySig, `${op} ${shapes}${detail} (${phase})`, e, { op, shapes: `${shapes}${detail}`, phase });
    bump(byPhase, phase, e, { phase });
  }
  const rows = (m) =>
    [...m.values()].sort((p, q) => q.us - p.us).map(({ us, count, ...rest }) => ({ ...rest, count, ms: r1(us / 1000), pct: r1((100 * us) / total) }));
  const memMax = (key) => Math.max(0, ...kernels.map((e) => Number(e.args?.[key] ?? 0)));
  return {
    ort_mem_in_use_peak_mb: r1(memMax("mem_in_use_peak") / 2 ** 20),
    ort_arena_held_mb: r1(memMax("mem_arena_held") / 2 ** 20),
    run_wall_ms: r1(wallMs),
    model_run_ms: last ? r1(last.dur / 1000) : null,
    kernel_total_ms: r1(total / 1000),
    kernels: kernels.length,
    by_phase: rows(byPhase),
    by_op: rows(byOp),
    by_op_and_phase: rows(byOpPhase).slice(0, 30),
    by_signature: rows(bySig).slice(0, 40),
  };
}

// ---------------------------------------------------------------------------------------------
// parent

/** Runs a command that prints one JSON line; returns it with `window`: wall and CPU time and other processes' CPU share meanwhile. */
async function runJson(cmd, args, label, env) {
  log(`${label}: ${[cmd, ...args].join(" ")}`);
  const run = await H.runTimed(cmd, args, { env, echoPrefix: "" });
  const line = run.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (run.code !== 0 || !line) throw new Error(`${label} failed (exit ${run.code}): ${run.stderr.slice(-2000)}`);
  const res = JSON.parse(line);
  res.window = { wall_s: r2(run.wallS), cpu_user_s: run.userS, cpu_sys_s: run.sysS, max_rss_mb_gnu_time: r1(run.maxRssMb), foreign_cpu_load_pct: Math.round(100 * run.otherCpu) };
  return res;
}

let waitedS = 0;
const waits = [];

/** Waits (at most 60 s each, --max-wait in all) for other processes to use less than --quiet % of the CPU. */
async function waitQuiet(a, label) {
  const left = Math.max(0, a.maxWait - waitedS);
  const seen = await H.waitQuiet({ threshold: a.quiet / 100, pollS: 5, maxWaitS: Math.min(60, left), what: label, samples: 1 });
  waitedS += seen.waitedS;
  waits.push({ before: label, waited_s: Math.round(seen.waitedS), foreign_cpu_load_pct_at_start: Math.round(100 * seen.busy) });
}

function child(a, kind, model, extra = []) {
  const args = [fileURLToPath(import.meta.url), "--child", kind, "--model", model, "--out", a.out, "--batch", `${a.batch}`, "--seq", `${a.seq}`, "--threads", `${a.threads}`];
  if (a.steps !== null) args.push("--steps", `${a.steps}`);
  if (a.warmup !== null) args.push("--warmup", `${a.warmup}`);
  if (a.freshGrads) args.push("--fresh-grads");
  if (a.arena && kind === "train") args.push("--arena");
  if (a.noCollect && kind === "train") args.push("--no-collect");
  const label = `slimtune ${kind} ${model}`;
  return waitQuiet(a, label).then(() => runJson(process.execPath, [...args, ...extra], label));
}

async function peer(a, model, threads, forward) {
  const spec = MODELS[model];
  const label = `peer ${forward ? "forward" : "train"} ${model} t${threads}`;
  await waitQuiet(a, label);
  const { json, run, command } = await H.peer({ model: spec.dir, random: spec.random, method: "full", batch: a.batch, seq: a.seq, steps: a.steps ?? spec.steps, warmup: a.warmup ?? spec.warmup, threads, forwardOnly: forward });
  return { ...json, command, window: { wall_s: r2(run.wallS), cpu_user_s: run.userS, cpu_sys_s: run.sysS, foreign_cpu_load_pct: Math.round(100 * run.otherCpu) } };
}

async function peerBest(a, model, forward) {
  const runs = [];
  for (const t of a.peerThreads) runs.push(await peer(a, model, t, forward));
  const best = runs.reduce((p, q) => (q.tokens_per_s > p.tokens_per_s ? q : p));
  return { best, runs };
}

async function parent(a) {
  const started = Date.now();
  if (!fs.existsSync(path.join(dist, "engine/index.js"))) throw new Error("dist/ is missing: run npx tsc -p tsconfig.build.json first");
  fs.mkdirSync(path.dirname(a.out), { recursive: true });
  fs.mkdirSync(path.join(here, "results"), { recursive: true });
  const machine = H.machineInfo();
  if (a.peer && !machine.torch) throw new Error(`no torch for ${H.python}; install python3-torch (see ../shared/bench/torch_peer.py) or pass --no-peer`);
  const L = await lib();
  const results = [];
  for (const model of a.profileOnly ? [] : a.models) {
    log(`=== ${model}`);
    const config = L.readLlamaConfig(MODELS[model].dir);
    const flops = flopModel(config, a.batch, a.seq);
    const gemmRes = await child(a, "gemm", model);
    const train = await child(a, "train", model);
    const forward = a.forward ? await child(a, "forward", model) : null;
    const peerTrain = a.peer ? await peerBest(a, model, false) : null;
    const peerFwd = a.peer && a.forward ? await peerBest(a, model, true) : null;
    const fwdGemm = gemmRes.results.find((r) => r.threads === a.threads && r.op.startsWith("fwd"));
    const achieved = (f, ms) => r1(f / ms / 1e6);
    results.push({
      model, config: { hidden: config.hiddenSize, intermediate: config.intermediateSize, layers: config.numLayers, heads: config.numHeads, kv_heads: config.numKvHeads, head_dim: config.headDim, vocab: config.vocabSize },
      flops: { matmul_params: flops.matmulParams, train_step_gflop: r1(flops.train / 1e9), forward_gflop: r1(flops.forward / 1e9), formula: flops.formula },
      gemm: gemmRes,
      train: {
        slimtune: { ...train, achieved_gflops: achieved(flops.train, train.step_ms_median), graph_run_gflops: achieved(flops.train, train.run_ms_median) },
        peer: peerTrain && { ...peerTrain.best, achieved_gflops: achieved(flops.train, peerTrain.best.step_ms_median) },
        peer_runs: peerTrain?.runs,
        ratio: peerTrain && r2(train.tokens_per_s / peerTrain.best.tokens_per_s),
        gemm_gflops: fwdGemm.gflops,
        gemm_bound_ms: r1(flops.train / fwdGemm.gflops / 1e6),
      },
      forward: forward && {
        slimtune: { ...forward, achieved_gflops: achieved(flops.forward, forward.step_ms_median) },
        peer: peerFwd && { ...peerFwd.best, achieved_gflops: achieved(flops.forward, peerFwd.best.step_ms_median) },
        peer_runs: peerFwd?.runs,
        ratio: peerFwd && r2(forward.tokens_per_s / peerFwd.best.tokens_per_s),
      },
    });
  }
  let profile = null;
  const profileModel = a.profileModel ?? (a.models.includes("smollm2-135m-shape") ? "smollm2-135m-shape" : a.models.at(-1));
  if (a.profile) {
    log(`=== ORT profile of the ${profileModel} train step`);
    profile = await child({ ...a, steps: null, warmup: null }, "profile", profileModel, a.profileOptions ? ["--profile-options", a.profileOptions] : []);
    fs.writeFileSync(a.out.replace(/\.json$/, "-profile.json"), `${JSON.stringify(profile, null, 2)}\n`);
  }

  const report = {
    benchmark: "train-step",
    date: new Date().toISOString(),
    command: `node bench/train-step.mjs ${process.argv.slice(2).join(" ")}`.trim(),
    machine: { nproc: machine.cores, cpu: machine.cpu, mem_gb: machine.memGiB },
    versions: { node: machine.node, "onnxruntime-node": machine.onnxruntimeNode, torch: machine.torch, python: H.python, commit: machine.commit },
    settings: { batch: a.batch, seq: a.seq, slimtune_threads: a.threads, peer_threads: `best of ${a.peerThreads.join(" and ")}`, optimizer: "AdamW lr 1e-4, weight decay 0.01 on all params (torch defaults)" },
    flop_formula: flopModel({ hiddenSize: 1, intermediateSize: 1, numHeads: 1, numKvHeads: 1, headDim: 1, vocabSize: 1, numLayers: 1 }, 1, 1).formula,
    results,
    profile,
    quiet_waits: { threshold_pct: a.quiet, total_waited_s: Math.round(waitedS), waits },
    wall_s: Math.round((Date.now() - started) / 1000),
  };
  fs.writeFileSync(a.out, `${JSON.stringify(report, null, 2)}\n`);

  // ---- readable tables
  const rows = [];
  const pct = (xs) => (xs && xs.length ? `${median(xs)}%` : "?");
  for (const r of results) {
    for (const mode of ["train", "forward"]) {
      const x = r[mode];
      if (!x) continue;
      const peers = x.peer_runs ? x.peer_runs.map((p) => `t${p.threads} ${p.tokens_per_s}`).join(", ") : "-";
      rows.push([
        r.model, mode === "train" ? "train step (full)" : "eval forward",
        x.slimtune.tokens_per_s, x.peer ? x.peer.tokens_per_s : "-", peers, x.ratio ?? "-",
        x.slimtune.peak_rss_mb, x.peer?.peak_rss_mb ?? "-",
        x.slimtune.achieved_gflops, x.peer?.achieved_gflops ?? "-", r.train.gemm_gflops,
        `${pct(x.slimtune.foreign_cpu_load_pct)} / ${x.peer?.window ? `${x.peer.window.foreign_cpu_load_pct}%` : "?"}`,
      ]);
    }
  }
  console.log(`\nbatch ${a.batch} × seq ${a.seq}; slimtune threads ${a.threads}; peer: best of threads ${a.peerThreads.join(" and ")}; ${report.machine.cpu}, ${report.machine.nproc} cores`);
  console.log(H.mdTable(["model", "mode", "slimtune tok/s", "peer tok/s", "peer by threads", "ratio", "slimtune RSS MB", "peer RSS MB", "slimtune GFLOPS", "peer GFLOPS", "ORT GEMM GFLOPS", "other load s/p"], rows));
  console.log(`\nGFLOPS: ${report.flop_formula}. ORT GEMM = plain Gemm [B·T, C]×[F, C]ᵀ, ${a.threads} threads, same run.`);
  console.log("other load s/p: CPU share used by other processes on this shared VM (slimtune: median over timed steps; peer: whole process).");
  console.log("\nslimtune train step split (median ms): graph run (with the output copy) / global norm / AdamW; plain Gemm GFLOPS (fwd x·Wᵀ, dX dy·W, dW dyᵀ·x):");
  for (const r of results) {
    const g = r.gemm.results.map((x) => `${x.op.split(" ")[0]}@t${x.threads} ${x.gflops}`).join(", ");
    console.log(`  ${r.model}: run ${r.train.slimtune.run_ms_median} / norm ${r.train.slimtune.norm_ms_median} / adamw ${r.train.slimtune.adamw_ms_median}; at GEMM speed the step would take ${r.train.gemm_bound_ms} ms; ${g}`);
  }
  if (profile) {
    console.log(`\nORT profile, ${profileModel} train step (3rd run): wall ${profile.run_wall_ms} ms, model_run ${profile.model_run_ms} ms, kernels ${profile.kernel_total_ms} ms; other processes ${profile.foreign_cpu_load_pct}% of the CPU`);
    console.log(`ORT memory: peak in use ${profile.ort_mem_in_use_peak_mb} MB, arena held ${profile.ort_arena_held_mb} MB; profile process peak RSS ${profile.peak_rss_mb} MB`);
    console.log(H.mdTable(["phase", "kernels", "ms", "%"], profile.by_phase.map((x) => [x.phase, x.count, x.ms, x.pct])));
    console.log(H.mdTable(["op", "count", "ms", "%"], profile.by_op.slice(0, 10).map((x) => [x.op, x.count, x.ms, x.pct])));
    console.log(H.mdTable(["op (phase)", "count", "ms", "%"], profile.by_op_and_phase.slice(0, 12).map((x) => [`${x.op} (${x.phase})`, x.count, x.ms, x.pct])));
    console.log(H.mdTable(["op, input shapes (phase)", "count", "ms", "%"], profile.by_signature.slice(0, 15).map((x) => [`${x.op} ${x.shapes} (${x.phase})`, x.count, x.ms, x.pct])));
  }
  console.log(`\nwrote ${path.relative(root, a.out)} (${report.wall_s} s)`);
}

const args = parseArgs(process.argv.slice(2));
const kinds = { train: childTrain, forward: childForward, gemm: childGemm, profile: childProfile };
if (args.child) {
  if (!kinds[args.child] || !args.model) throw new Error("--child train|forward|gemm|profile needs --model");
  await kinds[args.child](args);
} else {
  await parent(args);
}
