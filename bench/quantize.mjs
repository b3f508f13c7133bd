#!/usr/bin/env node
// Quantization time at real shapes (issue 21 item 2): GPTQ 4-bit g128 in slimtune against a PyTorch
// GPTQ written as the reference `fasterquant` (bench/gptq_peer.py), both quantizing the same weights
// with the same Hessians in the same run, and ReALLM 3 bits per weight in slimtune on the same
// weights. One decoder block of a model shape (/work/shared/models/*-shape: q, k, v, o, gate, up,
// down, random weights) is measured; a model's total is that block × its layer count — extrapolated,
// and labelled so.
//
// The Hessians H = 2XᵀX/T come from synthetic calibration inputs X [T, K] (T = --calib-seqs ×
// --calib-len tokens): Gaussian features with log-normal channel scales, a few outlier channels and
// a shared low-rank part, so H is far from diagonal, like a real layer's. Layers that share an
// input share one Hessian and one preparation (q/k/v; gate/up), as inside a model. Each side runs
// in its own child process (/usr/bin/time: wall time and peak RSS; the CPU share other processes
// took meanwhile is recorded, since the machine is shared). Each child times only the per-layer
// work: preparing the Hessian (dampening, chol(H⁻¹)) and quantizing the layers; not reading files.
// Quality, untimed: the relative reconstruction error ‖(W − Q)X‖ / ‖WX‖ of each layer (through H),
// and how far slimtune's Q is from the peer's, ‖Q_slimtune − Q_peer‖ / ‖W‖.
//
//   node bench/quantize.mjs [--models smollm2-135m-shape,qwen2.5-0.5b-shape] [--methods gptq,reallm]
//                           [--threads 1] [--repeats 3] [--out bench/results/quantize]
//
// Needs dist/ (npx tsc -p tsconfig.build.json) and /usr/bin/python3 with torch (SLIMTUNE_PYTHON).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fmt, log, machineInfo, mdTable, parseFlags, python, root, runTimed, setLogFile, shared, writeJson } from "./lib/harness.mjs";
import { relativeError } from "./lib/hessian-error.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = (p) => import(path.join(root, "dist", p));
const peerScript = path.join(here, "gptq_peer.py");

const BITS = 4;
const GROUP = 128;
const REALLM_BUDGET = 3;

// ---------------------------------------------------------------------------------------------
// data: one block's weights and Hessians as raw float32 files plus a manifest both sides read

function blockLayers(cfg) {
  const h = cfg.hidden_size;
  const heads = cfg.num_attention_heads;
  const hd = cfg.head_dim ?? h / heads;
  const kv = cfg.num_key_value_heads ?? heads;
  const inter = cfg.intermediate_size;
  return [
    { name: "attn_in", k: h, layers: [["q_proj", heads * hd], ["k_proj", kv * hd], ["v_proj", kv * hd]] },
    { name: "o_in", k: heads * hd, layers: [["o_proj", h]] },
    { name: "mlp_in", k: h, layers: [["gate_proj", inter], ["up_proj", inter]] },
    { name: "down_in", k: inter, layers: [["down_proj", h]] },
  ];
}

async function makeData(dir, cfg, opts) {
  const { Rng } = await dist("core/rng.js");
  const { HostGemm } = await dist("quant/linalg/host-gemm.js");
  fs.mkdirSync(dir, { recursive: true });
  const gemm = new HostGemm({ threads: opts.threads });
  const rng = new Rng(opts.seed);
  const T = opts.calibSeqs * opts.calibLen;
  const hessians = [];
  try {
    for (const g of blockLayers(cfg)) {
      const K = g.k;
      const scale = Float32Array.from({ length: K }, () => Math.exp(0.5 * rng.normal()));
      for (let i = 0; i < Math.max(1, K >> 8); i++) scale[rng.int(K)] *= 10; // outlier channels
      const R = 16;
      const z = Float32Array.from({ length: T * R }, () => rng.normal());
      const b = Float32Array.from({ length: R * K }, () => 0.5 * rng.normal());
      const x = await gemm.mul(z, b, { m: T, k: R, n: K });
      for (let t = 0; t < T; t++) for (let j = 0; j < K; j++) x[t * K + j] = (x[t * K + j] + rng.normal()) * scale[j];
      const h = await gemm.mul(x, x, { m: K, k: T, n: K, transA: true });
      for (let i = 0; i < h.length; i++) h[i] *= 2 / T;
      fs.writeFileSync(path.join(dir, `${g.name}.h.f32`), Buffer.from(h.buffer, h.byteOffset, h.byteLength));
      const layers = [];
      for (const [name, n] of g.layers) {
        const w = Float32Array.from({ length: n * K }, () => 0.02 * rng.normal());
        fs.writeFileSync(path.join(dir, `${name}.w.f32`), Buffer.from(w.buffer));
        layers.push({ name, n, file: `${name}.w.f32` });
      }
      // g128 where 128 divides K; else the largest of 64, 32 that does (SmolLM2's K = 576 = 4.5 × 128:
      // slimtune keeps every group inside a row, so both sides use 64 there).
      const groupSize = [GROUP, 64, 32].find((gs) => K % gs === 0);
      hessians.push({ name: g.name, k: K, group_size: groupSize, file: `${g.name}.h.f32`, layers });
    }
  } finally {
    await gemm.release();
  }
  const manifest = { bits: BITS, act_order: false, damp: 0.01, block_size: 128, calibration_tokens: T, hessians };
  fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 1));
  return manifest;
}

function readF32(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

// ---------------------------------------------------------------------------------------------
// children: slimtune's side (one process per method)

/** CPU seconds of this process (every thread: ORT's included) since `c0`. */
function cpuSeconds(c0) {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

async function childGptq(dir, threads, outValues) {
  const { prepareHessianBlocked, gptqQuantize, defaultGptqSettings } = await dist("quant/gptq.js");
  const { HostGemm } = await dist("quant/linalg/host-gemm.js");
  const { dequantizeRtn } = await dist("quant/kinds/rtn.js");
  const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
  const gemm = new HostGemm({ threads });
  const settings = { ...defaultGptqSettings, blockSize: m.block_size, dampPercent: m.damp, actOrder: m.act_order };
  // Warm-up, untimed (the peer does the same): JIT compilation and ORT's first session would
  // otherwise land on the first layer; in a model they are paid once for all its blocks.
  // K = 1280 splits into halves wide enough (≥ 512) that every product session the factorization
  // of a real width uses is created here, not inside the first timed layer.
  const warmK = 1280;
  const warmH = new Float64Array(warmK * warmK);
  for (let i = 0; i < warmK; i++) for (let j = 0; j < warmK; j++) warmH[i * warmK + j] = i === j ? 2 : 1 / (1 + Math.abs(i - j));
  const warmW = Float32Array.from({ length: 64 * warmK }, (_, i) => Math.sin(i));
  const warmSpec = { scheme: "rtn", bits: m.bits, groupSize: 128, symmetric: false };
  await gptqQuantize(warmW, 64, warmK, await prepareHessianBlocked(warmH, warmK, settings, gemm), warmSpec, { settings, gemm });
  let hessianS = 0;
  let gptqS = 0;
  let cpuS = 0;
  for (const hs of m.hessians) {
    const h = Float64Array.from(readF32(path.join(dir, hs.file)));
    let t0 = performance.now();
    let c0 = process.cpuUsage();
    const prep = await prepareHessianBlocked(h, hs.k, settings, gemm, hs.name);
    const prepS = (performance.now() - t0) / 1000;
    const prepCpu = cpuSeconds(c0);
    hessianS += prepS;
    cpuS += prepCpu;
    for (const l of hs.layers) {
      const w = readF32(path.join(dir, l.file));
      const spec = { scheme: "rtn", bits: m.bits, groupSize: hs.group_size, symmetric: false };
      t0 = performance.now();
      c0 = process.cpuUsage();
      const res = await gptqQuantize(w, l.n, hs.k, prep, spec, { settings, gemm, layer: l.name });
      const sec = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(c0);
      gptqS += sec;
      cpuS += cpu;
      const q = dequantizeRtn(res.layer);
      if (outValues) fs.writeFileSync(path.join(outValues, `${l.name}.q.f32`), Buffer.from(q.buffer, q.byteOffset, q.byteLength));
      console.log(JSON.stringify({ layer: l.name, n: l.n, k: hs.k, hessian: hs.name, hessian_s: prepS, gptq_s: sec, hessian_cpu_s: prepCpu, gptq_cpu_s: cpu, loss: res.loss, relative_error: await relativeError(gemm, w, q, h, l.n, hs.k) }));
    }
  }
  await gemm.release();
  console.log(JSON.stringify({ summary: true, threads, hessian_s: hessianS, gptq_s: gptqS, seconds: hessianS + gptqS, cpu_s: cpuS, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
}

/** chooseReallmShapes on the block's layers, timed; the weights it read are dropped on return (peak RSS). */
async function screenBlock(dir, m, reallmOptions, chooseReallmShapes) {
  const block = m.hessians.flatMap((hs) => hs.layers.map((l) => ({ w: readF32(path.join(dir, l.file)), n: l.n, k: hs.k, path: l.name })));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const choice = await chooseReallmShapes(block.map((l, index) => ({ ...l, index })), reallmOptions);
  return { seconds: (performance.now() - t0) / 1000, cpu_s: cpuSeconds(c0), choice };
}

async function childReallm(dir, threads, only, screening) {
  const { quantizeReallmLayer, chooseReallmShapes, withShape } = await dist("quant/reallm.js");
  const { dequantize } = await dist("quant/kinds/index.js");
  const { HostGemm } = await dist("quant/linalg/host-gemm.js");
  const { NearestCentroid } = await dist("quant/linalg/kmeans.js");
  const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
  const gemm = new HostGemm({ threads });
  const nearest = new NearestCentroid({ threads });
  const reallmOptions = { budget: REALLM_BUDGET, vqDims: [2, 4], blockSize: 64, permute: false, lowRankDtype: "float16", seed: 0, gemm, nearest };
  // Warm-up, untimed, as the GPTQ child and the peer do: ORT's Gemm sessions and the JIT, paid once
  // per model, would otherwise land on the first timed layer.
  const warmW = Float32Array.from({ length: 256 * 512 }, (_, i) => 0.02 * Math.sin(i * 0.7));
  await quantizeReallmLayer(warmW, 256, 512, reallmOptions, "warm-up");
  let total = 0;
  let totalCpu = 0;
  // As quantizeReallmModel does for a model: the VQ shape is screened once per matrix size, here on
  // this block's layers (a model screens its middle block's), and every layer of that size takes it.
  // Timed apart, since a model pays it once for all its blocks. --screening layer scores the shapes
  // on each layer instead.
  let shape = [];
  if (screening === "model") {
    const { seconds, cpu_s, choice } = await screenBlock(dir, m, reallmOptions, chooseReallmShapes);
    shape = choice;
    total += seconds;
    totalCpu += cpu_s;
    console.log(JSON.stringify({ screening: true, seconds, cpu_s, shape }));
  }
  // As in quantizeReallmModel, each layer's k-means starts from the previous layer's codebook.
  const carried = { ...reallmOptions, codebooks: new Map() };
  let i = 0;
  for (const hs of m.hessians) {
    const h = Float64Array.from(readF32(path.join(dir, hs.file)));
    for (const l of hs.layers) {
      if (only.length && !only.includes(l.name)) continue;
      const w = readF32(path.join(dir, l.file));
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const { layer, report } = await quantizeReallmLayer(w, l.n, hs.k, withShape(carried, shape, l.n, hs.k), l.name, i++);
      const sec = (performance.now() - t0) / 1000;
      const cpu = cpuSeconds(c0);
      total += sec;
      totalCpu += cpu;
      const q = dequantize(layer);
      console.log(
        JSON.stringify({
          layer: l.name,
          n: l.n,
          k: hs.k,
          seconds: sec,
          cpu_s: cpu,
          kmeans_s: report.kmeansSeconds,
          svd_s: report.svdSeconds,
          bits_per_weight: report.bitsPerWeight,
          rank: layer.spec.rank,
          vq: `d${layer.spec.vqDim}x${1 << layer.spec.codeBits}`,
          frobenius_error: report.relativeError,
          relative_error: await relativeError(gemm, w, q, h, l.n, hs.k),
          alternation_errors: report.errors,
          candidates: report.candidates,
        }),
      );
    }
  }
  await gemm.release();
  await nearest.release();
  console.log(JSON.stringify({ summary: true, threads, seconds: total, cpu_s: totalCpu, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
}

// ---------------------------------------------------------------------------------------------
// driver

function jsonLines(text) {
  return text
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => JSON.parse(l));
}

async function runChild(label, cmd, args, env) {
  log(`${label}: ${[cmd, ...args].join(" ")}`);
  const run = await runTimed(cmd, args, { env, echoPrefix: null });
  if (run.code !== 0) throw new Error(`${label} exited with ${run.code}\n${run.stderr.trim().split("\n").slice(-8).join("\n")}`);
  const lines = jsonLines(run.stdout);
  const summary = lines.find((l) => l.summary);
  log(`  ${label}: ${summary.seconds.toFixed(1)} s of timed work (${summary.cpu_s.toFixed(1)} CPU s), wall ${run.wallS.toFixed(1)} s, peak RSS ${run.maxRssMb.toFixed(0)} MiB, other processes ${(100 * run.otherCpu).toFixed(0)} % of the CPU`);
  return { layers: lines.filter((l) => !l.summary && !l.screening), screening: lines.find((l) => l.screening), summary, wallS: run.wallS, maxRssMb: run.maxRssMb, otherCpu: run.otherCpu, command: [cmd, ...args].join(" ") };
}

function qDistance(dir, layers) {
  const out = {};
  for (const l of layers) {
    const w = readF32(path.join(dir, l.file));
    const a = readF32(path.join(dir, "slimtune", `${l.name}.q.f32`));
    const b = readF32(path.join(dir, "peer", `${l.name}.q.f32`));
    let num = 0;
    let den = 0;
    let same = 0;
    for (let i = 0; i < w.length; i++) {
      num += (a[i] - b[i]) ** 2;
      den += w[i] ** 2;
      if (Math.abs(a[i] - b[i]) <= 1e-3 * Math.abs(b[i]) + 1e-7) same++;
    }
    out[l.name] = { relativeDistance: Math.sqrt(num / den), sameValueShare: same / w.length };
  }
  return out;
}

async function main() {
  const flags = parseFlags(
    process.argv.slice(2),
    {
      models: { type: "list", default: ["smollm2-135m-shape", "qwen2.5-0.5b-shape"], help: "folders under shared/models" },
      methods: { type: "list", default: ["gptq", "reallm"], help: "gptq (against the peer) and/or reallm" },
      threads: { type: "int", default: 1, help: "threads for both sides" },
      repeats: { type: "int", default: 1, help: "runs per side (peer, slimtune GPTQ, ReALLM), taking turns; each side reports its median run" },
      sides: { type: "list", default: ["peer", "slimtune"], help: "GPTQ sides to run (one side per invocation lets two runs share a busy machine)" },
      "reuse-data": { type: "bool", default: false, help: "keep the weights and Hessians already in --work (same seed) instead of writing them again" },
      "calib-seqs": { type: "int", default: 8, help: "calibration sequences" },
      "calib-len": { type: "int", default: 256, help: "tokens per calibration sequence" },
      seed: { type: "int", default: 0, help: "weights and calibration inputs" },
      "reallm-layers": { type: "list", default: [], help: "ReALLM on these layers of the block only (e.g. k_proj,o_proj,down_proj); default all" },
      screening: { type: "string", default: "model", help: "ReALLM's shape screening: model (once, on the block's layers, timed apart) or layer (each layer scores the shapes)" },
      out: { type: "string", default: path.join(root, "bench/results/quantize"), help: "writes OUT.json and OUT.log" },
      work: { type: "string", default: path.join(os.tmpdir(), "slimtune-quantize-bench"), help: "where the weights and Hessians go" },
      merge: { type: "list", default: [], help: "instead of running: join the sides of earlier runs' JSON files (same data: seed and calibration) into --out" },
      child: { type: "string", default: "", help: "(internal) gptq | reallm" },
      dir: { type: "string", default: "", help: "(internal) data folder" },
      "out-values": { type: "string", default: "", help: "(internal)" },
    },
    "node bench/quantize.mjs [flags]",
  );
  if (flags.child === "gptq") return childGptq(flags.dir, flags.threads, flags["out-values"]);
  if (flags.child === "reallm") return childReallm(flags.dir, flags.threads, flags["reallm-layers"], flags.screening);

  if (flags.merge.length) return merge(flags.merge, flags.out);
  setLogFile(`${flags.out}.log`);
  const machine = machineInfo();
  log(`machine: ${machine.cpu}, ${machine.cores} cores; torch ${machine.torch}; commit ${machine.commit}; threads ${flags.threads}`);
  const results = { machine, flags: { ...flags }, bits: BITS, groupSize: GROUP, reallmBudget: REALLM_BUDGET, models: [] };
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  for (const model of flags.models) {
    const cfg = JSON.parse(fs.readFileSync(path.join(shared, "models", model, "config.json"), "utf8"));
    const dir = path.join(flags.work, model);
    log(`${model}: writing one block's weights and Hessians (${flags["calib-seqs"]} × ${flags["calib-len"]} calibration tokens) to ${dir}`);
    const existing = path.join(dir, "manifest.json");
    const manifest =
      flags["reuse-data"] && fs.existsSync(existing)
        ? JSON.parse(fs.readFileSync(existing, "utf8"))
        : await makeData(dir, cfg, { threads: flags.threads, seed: flags.seed, calibSeqs: flags["calib-seqs"], calibLen: flags["calib-len"] });
    const rec = { model, layersInModel: cfg.num_hidden_layers, calibrationTokens: manifest.calibration_tokens, shapes: manifest.hessians };
    if (flags.methods.includes("gptq")) {
      for (const side of ["peer", "slimtune"]) fs.mkdirSync(path.join(dir, side), { recursive: true });
      // Under a shared machine's changing load, the sides alternate (peer, slimtune, peer, …) and each
      // keeps its median run; every run's totals and each adjacent pair's speed ratio are recorded too.
      const runs = { peer: [], gptq: [], reallm: [] };
      for (let i = 0; i < flags.repeats; i++) {
        if (flags.sides.includes("peer")) {
          const run = await runChild("peer (PyTorch fasterquant)", python, [peerScript, "--dir", dir, "--threads", String(flags.threads), "--out-values", path.join(dir, "peer")], env);
          run.torch = run.summary.torch;
          runs.peer.push(run);
        }
        if (flags.sides.includes("slimtune")) {
          runs.gptq.push(await runChild("slimtune GPTQ", process.execPath, [fileURLToPath(import.meta.url), "--child", "gptq", "--dir", dir, "--threads", String(flags.threads), "--out-values", path.join(dir, "slimtune")], env));
        }
        // ReALLM takes its turn in the same rotation, so each of its runs has a peer run beside it.
        if (flags.methods.includes("reallm")) runs.reallm.push(await runChild("slimtune ReALLM", process.execPath, reallmArgs(dir, flags), env));
      }
      for (const side of ["peer", "gptq", "reallm"]) {
        if (!runs[side].length) continue;
        rec[side] = medianRun(runs[side]);
        rec[side].runs = runs[side].map((r) => ({ seconds: r.summary.seconds, cpu_s: r.summary.cpu_s, otherCpu: r.otherCpu, maxRssMb: r.maxRssMb }));
      }
      if (runs.peer.length && runs.peer.length === runs.gptq.length) {
        rec.pairRatios = runs.peer.map((p, i) => ({ wall: p.summary.seconds / runs.gptq[i].summary.seconds, cpu: p.summary.cpu_s / runs.gptq[i].summary.cpu_s }));
        log(`  speed vs peer, run by run (timed work, wall / CPU): ${rec.pairRatios.map((r) => `${fmt.x(r.wall)} / ${fmt.x(r.cpu)}`).join(", ")}`);
      }
      if (runs.peer.length && runs.peer.length === runs.reallm.length) {
        // ReALLM's work counted over the layers it ran, the peer's over the same layers.
        rec.reallmPairRatios = runs.peer.map((p, i) => reallmVsPeer(p, runs.reallm[i], manifest));
        log(`  ReALLM speed vs the peer's GPTQ, run by run (timed work, wall / CPU): ${rec.reallmPairRatios.map((r) => `${fmt.x(r.wall)} / ${fmt.x(r.cpu)}`).join(", ")}`);
      }
      if (rec.peer && rec.gptq) rec.qDistance = qDistance(dir, manifest.hessians.flatMap((h) => h.layers));
    }
    if (flags.methods.includes("reallm") && !rec.reallm) {
      rec.reallm = await runChild("slimtune ReALLM", process.execPath, reallmArgs(dir, flags), env);
    }
    results.models.push(rec);
    writeJson(`${flags.out}.json`, results);
    log(`\n${table(rec)}`);
  }
  writeJson(`${flags.out}.json`, results);
}

function reallmArgs(dir, flags) {
  return [fileURLToPath(import.meta.url), "--child", "reallm", "--dir", dir, "--threads", String(flags.threads), "--screening", flags.screening, ...(flags["reallm-layers"].length ? ["--reallm-layers", flags["reallm-layers"].join(",")] : [])];
}

/** Peer GPTQ time ÷ ReALLM time over the layers ReALLM ran (each shared Hessian preparation counted once, as in a model). */
function reallmVsPeer(peer, reallm, manifest) {
  const ran = new Set(reallm.layers.map((l) => l.layer));
  let wall = 0;
  let cpu = 0;
  for (const hs of manifest.hessians) {
    const layers = hs.layers.filter((l) => ran.has(l.name));
    layers.forEach((l, i) => {
      const p = peer.layers.find((x) => x.layer === l.name);
      wall += p.gptq_s + (i === 0 ? p.hessian_s : 0);
      cpu += p.gptq_cpu_s + (i === 0 ? p.hessian_cpu_s : 0);
    });
  }
  return { wall: wall / reallm.summary.seconds, cpu: cpu / reallm.summary.cpu_s };
}

/** The run with the median timed-work seconds (the lower middle one of an even count). */
function medianRun(runs) {
  const sorted = [...runs].sort((a, b) => a.summary.seconds - b.summary.seconds);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** One record per model from several runs' JSON: each side (peer, gptq, reallm) from the run that has it. */
function merge(files, out) {
  setLogFile(`${out}.log`);
  const runs = files.map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  const models = new Map();
  for (const [i, run] of runs.entries()) {
    for (const rec of run.models) {
      const m = models.get(rec.model) ?? { ...rec, peer: undefined, gptq: undefined, reallm: undefined, from: {} };
      for (const side of ["peer", "gptq", "reallm", "qDistance"]) {
        if (rec[side] && !m[side]) {
          m[side] = rec[side];
          m.from[side] = `${files[i]} (${run.machine.date})`;
        }
      }
      models.set(rec.model, m);
    }
  }
  const merged = { machine: runs[0].machine, mergedFrom: files, bits: BITS, reallmBudget: REALLM_BUDGET, models: [...models.values()] };
  writeJson(`${out}.json`, merged);
  for (const rec of merged.models) log(`\n${table(rec)}\nsides from: ${JSON.stringify(rec.from)}`);
}

/** Per layer: wall and CPU seconds (a shared Hessian preparation counted once, on its group's first layer). */
function table(rec) {
  const rows = [];
  const byName = (list, name) => list?.layers.find((l) => l.layer === name);
  const zero = { wall: 0, cpu: 0 };
  const estimated = [];
  const sums = { peer: { ...zero }, gptq: { ...zero }, reallm: { ...zero } };
  const gptqTime = (l, first) => (l ? { wall: l.gptq_s + (first ? l.hessian_s : 0), cpu: l.gptq_cpu_s + (first ? l.hessian_cpu_s : 0) } : null);
  const both = (t) => (t ? `${fmt.f(t.wall)} (${fmt.f(t.cpu)})` : "–");
  const add = (key, t) => {
    // (sums of the layers that ran)
    if (!t) return;
    sums[key].wall += t.wall;
    sums[key].cpu += t.cpu;
  };
  // The peer's time over the layers with a ReALLM time (its shared Hessian preparation once per group).
  const peerBesideReallm = { ...zero };
  for (const hs of rec.shapes) {
    let preparedBeside = false;
    hs.layers.forEach((l, i) => {
      const p = gptqTime(byName(rec.peer, l.name), i === 0);
      const s = gptqTime(byName(rec.gptq, l.name), i === 0);
      const rl = byName(rec.reallm, l.name);
      // A layer left out (--reallm-layers) counts as a measured layer with as many weights, marked "≈".
      const twin = rl ?? rec.reallm?.layers.find((o) => o.n * o.k === l.n * hs.k);
      const r = twin ? { wall: twin.seconds, cpu: twin.cpu_s } : null;
      if (!rl && twin) estimated.push(`${l.name} ≈ ${twin.layer}`);
      add("peer", p);
      add("gptq", s);
      add("reallm", r);
      const peerLayer = byName(rec.peer, l.name);
      if (r && peerLayer) {
        const prep = preparedBeside ? { wall: 0, cpu: 0 } : { wall: peerLayer.hessian_s, cpu: peerLayer.hessian_cpu_s };
        preparedBeside = true;
        peerBesideReallm.wall += peerLayer.gptq_s + prep.wall;
        peerBesideReallm.cpu += peerLayer.gptq_cpu_s + prep.cpu;
      }
      rows.push([
        `${l.name} [${l.n}, ${hs.k}] g${hs.group_size}`,
        both(p),
        both(s),
        p && s ? `${fmt.x(p.wall / s.wall)} (${fmt.x(p.cpu / s.cpu)})` : "–",
        fmt.f(byName(rec.peer, l.name)?.relative_error, 4),
        fmt.f(byName(rec.gptq, l.name)?.relative_error, 4),
        rl ? both(r) : r ? `≈ ${both(r)}` : "–",
        p && r ? `${fmt.x(p.wall / r.wall)} (${fmt.x(p.cpu / r.cpu)})` : "–",
        fmt.f(rl?.relative_error, 4),
      ]);
    });
  }
  // ReALLM's shape screening (on the block's layers) is part of the block's time; a model pays it once.
  const screen = rec.reallm?.screening;
  if (screen) {
    sums.reallm.wall += screen.seconds;
    sums.reallm.cpu += screen.cpu_s;
    const shapes = [...new Set(screen.shape.map((c) => `d ${c.vqDim} × ${1 << c.codeBits}`))];
    const shape = shapes.length ? `${screen.shape.length} sizes: ${shapes.join(", ")}` : "fixed";
    rows.push([`ReALLM shape screening (${shape})`, "", "", "", "", "", both({ wall: screen.seconds, cpu: screen.cpu_s }), "", ""]);
  }
  const L = rec.layersInModel;
  // A side that did not run shows "–", not a zero.
  const ran = { peer: Boolean(rec.peer), gptq: Boolean(rec.gptq), reallm: Boolean(rec.reallm) };
  const total = (key, times = 1) => (ran[key] ? { wall: sums[key].wall * times, cpu: sums[key].cpu * times } : null);
  const ratio = ran.peer && ran.gptq ? `${fmt.x(sums.peer.wall / sums.gptq.wall)} (${fmt.x(sums.peer.cpu / sums.gptq.cpu)})` : "–";
  const reallmRatio = ran.peer && ran.reallm ? `${fmt.x(peerBesideReallm.wall / sums.reallm.wall)} (${fmt.x(peerBesideReallm.cpu / sums.reallm.cpu)})` : "–";
  rows.push(["one block", both(total("peer")), both(total("gptq")), ratio, "", "", both(total("reallm")), reallmRatio, ""]);
  rows.push([`× ${L} blocks (extrapolated)`, both(total("peer", L)), both(total("gptq", L)), ratio, "", "", both(total("reallm", L)), reallmRatio, ""]);
  if (screen && ran.peer) {
    const model = { wall: (sums.reallm.wall - screen.seconds) * L + screen.seconds, cpu: (sums.reallm.cpu - screen.cpu_s) * L + screen.cpu_s };
    rows.push([`× ${L} blocks, ReALLM screening once (${fmt.f(screen.seconds)} (${fmt.f(screen.cpu_s)}) s)`, both(total("peer", L)), "", "", "", "", both(model), `${fmt.x((peerBesideReallm.wall * L) / model.wall)} (${fmt.x((peerBesideReallm.cpu * L) / model.cpu)})`, ""]);
  }
  rows.push(["peak RSS of the process, MiB", fmt.int(rec.peer?.maxRssMb), fmt.int(rec.gptq?.maxRssMb), "", "", "", fmt.int(rec.reallm?.maxRssMb), "", ""]);
  rows.push(["other processes' share of the CPU", fmt.pct(rec.peer?.otherCpu, 0), fmt.pct(rec.gptq?.otherCpu, 0), "", "", "", fmt.pct(rec.reallm?.otherCpu, 0), "", ""]);
  const note = estimated.length ? `\nReALLM layers not run, counted as the measured layer of the same size: ${estimated.join(", ")}` : "";
  return `${rec.model}: seconds wall (CPU)${note}\n${mdTable(["layer", "peer GPTQ", "slimtune GPTQ", "speed vs peer", "peer ‖ΔWX‖/‖WX‖", "slimtune ‖ΔWX‖/‖WX‖", "slimtune ReALLM 3 bpw", "ReALLM speed vs peer GPTQ", "ReALLM ‖ΔWX‖/‖WX‖"], rows)}`;
}

await main();
