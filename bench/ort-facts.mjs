// Three engine facts that limit issue 21, re-measured for two onnxruntime-node installs side by side
// (an ORT upgrade is judged by them). Each install runs in its own child process, taking turns
// round by round, so both see the same load; times are the child's own CPU time, which other
// processes' turns on the cores do not inflate.
//   1. fetches: does a run with a pre-allocated output (`fetches`) write into it and hand that same
//      buffer back, or return a fresh copy? Measured by identity and by the growth of
//      process.memoryUsage().arrayBuffers while the result is held.
//   2. threads: ReduceLogSumExp and LogSoftmax over [rows, 49152] at 1 and 2 intra-op threads: the
//      CPU each of the process's threads spent in the runs (/proc/self/task). An op that splits its
//      work gives its busiest thread about half of it at 2 threads; one that does not, all of it.
//      (CPU/wall would say the same on an idle machine, but other processes' load hides it.)
//   3. MatMulNBits: 240 layers of 576 × 1536 (alternating up and down, as an MLP) at one row,
//      4 bits, accuracy level 4, 1 thread, in blocks of 32 and 128: 4-bit weight GB per CPU second.
//      Every layer has its own weights and scales (~130 MB in all, 4× a 32 MiB L3): ORT shares
//      identical initializers, so layers with the same bytes would be read from cache, as this
//      fact's first version did (its 40 layers repeated one pattern per shape).
//   forward (with --facts forward): the eval forward of bench/train-step.mjs (SmolLM2-135M shape,
//      random weights, batch 8 × seq 256, 2 threads) in CPU seconds per batch, this worktree's graph
//      run on each install (dist/engine's binding seam), since wall time under load says little.
//
//   npx tsc -p tsconfig.build.json && node --expose-gc bench/ort-facts.mjs \
//     --ort /work/main/node_modules/onnxruntime-node,node_modules/onnxruntime-node [--rounds 3] [--rows 2048]
//     [--out bench/results/ort-facts.json]

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { machineInfo, median, parseFlags, root, sampleLoad, shared, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    ort: { type: "list", default: [path.join(root, "node_modules/onnxruntime-node")], help: "onnxruntime-node package folders to compare" },
    rounds: { type: "int", default: 3, help: "turns per install (median)" },
    rows: { type: "int", default: 2048, help: "rows of the [rows, 49152] reductions (eval's logits block at batch 8 × seq 256)" },
    facts: { type: "list", default: ["fetches", "threads", "matmulnbits"], help: "which to measure: fetches, threads, matmulnbits, forward" },
    child: { type: "string", default: "", help: "(internal) measure with this install and print JSON" },
    out: { type: "string", default: path.join(root, "bench/results/ort-facts.json"), help: "results JSON" },
  },
  "node --expose-gc bench/ort-facts.mjs — pre-allocated fetches, reduction threads and MatMulNBits blocks, per ORT install",
);

const VOCAB = 49_152;

const dist = (m) => import(pathToFileURL(path.join(root, "dist", m)).href);
const { Graph } = await dist("engine/graph.js");
const { toOnnxBytes } = await dist("engine/onnx-writer.js");

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const collect = () => globalThis.gc?.();

/** CPU ms each thread of this process has used so far: tid → ms (utime + stime, 10 ms ticks). */
function threadCpuMs() {
  const out = new Map();
  for (const tid of fs.readdirSync("/proc/self/task")) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(tid, 10 * (Number(f[11]) + Number(f[12])));
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

/** The busiest thread's share of the CPU spent between two threadCpuMs() snapshots, and how many threads did ≥ 10 % of it. */
function threadSpread(before, after) {
  const deltas = [...after].map(([tid, ms]) => ms - (before.get(tid) ?? 0)).filter((d) => d > 0);
  const total = deltas.reduce((a, b) => a + b, 0);
  return { busiestShare: total > 0 ? Math.max(...deltas) / total : 0, threadsAbove10Pct: deltas.filter((d) => d >= 0.1 * total).length };
}

async function session(ort, graph, outputs, threads) {
  const bytes = toOnnxBytes(graph, outputs);
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });
}

/** Fact 1: y = 2x over 8 M floats, run plainly and into a pre-allocated output. */
async function fetchesFact(ort) {
  const n = 8 * 1024 * 1024;
  const g = new Graph();
  const x = g.input("x", [n]);
  const y = g.add({ type: "Mul" }, [x, g.scalar(2)], [n], "float32");
  const s = await session(ort, g, { y }, 1);
  const feed = { x: new ort.Tensor("float32", Float32Array.from({ length: n }, (_, i) => i % 1000), [n]) };
  await s.run(feed); // warm-up: the arena and the kernel's first-run costs
  const growth = async (fn) => {
    collect();
    const before = process.memoryUsage().arrayBuffers;
    const held = await fn();
    const grew = process.memoryUsage().arrayBuffers - before;
    return { held, grewMb: grew / 2 ** 20 };
  };
  const plain = await growth(() => s.run(feed));
  const target = new ort.Tensor("float32", new Float32Array(n), [n]);
  const pre = await growth(() => s.run(feed, { y: target }));
  const returned = pre.held.y;
  const result = {
    outputMb: (4 * n) / 2 ** 20,
    plainGrowthMb: plain.grewMb,
    preallocatedGrowthMb: pre.grewMb,
    preallocatedWritten: target.data[999] === 2 * 999,
    returnsSameTensor: returned === target,
    returnsSameBuffer: returned.data.buffer === target.data.buffer,
  };
  await s.release();
  return result;
}

/** Fact 2: CPU and wall time of one op over [rows, VOCAB] at 1 and 2 threads. */
async function threadsFact(ort, rows) {
  const data = new Float32Array(rows * VOCAB);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 4;
  const feed = { x: new ort.Tensor("float32", data, [rows, VOCAB]) };
  const ops = {
    ReduceLogSumExp: (g, x) => g.add({ type: "ReduceLogSumExp" }, [x, g.int64s([1])], [rows, 1], "float32", { keepdims: 1 }),
    LogSoftmax: (g, x) => g.add({ type: "LogSoftmax" }, [x], [rows, VOCAB], "float32", { axis: 1 }),
    // The same kernel with a [rows, 1] output, so the run returns no large array to copy.
    "LogSoftmax+ReduceSum": (g, x) => {
      const y = g.add({ type: "LogSoftmax" }, [x], [rows, VOCAB], "float32", { axis: 1 });
      return g.add({ type: "ReduceSum" }, [y, g.int64s([1])], [rows, 1], "float32", { keepdims: 1 });
    },
  };
  const out = {};
  for (const [name, build] of Object.entries(ops)) {
    for (const threads of [1, 2]) {
      const g = new Graph();
      const y = build(g, g.input("x", [rows, VOCAB]));
      const s = await session(ort, g, { y }, threads);
      await s.run(feed);
      const runs = [];
      const t0 = threadCpuMs();
      for (let r = 0; r < 3; r++) {
        collect();
        const c0 = cpuMs();
        const t0 = performance.now();
        await s.run(feed);
        runs.push({ wallMs: performance.now() - t0, cpuMs: cpuMs() - c0 });
      }
      const spread = threadSpread(t0, threadCpuMs());
      await s.release();
      const cpu = median(runs.map((r) => r.cpuMs));
      const wall = median(runs.map((r) => r.wallMs));
      out[`${name}@${threads}`] = { cpuMs: cpu, wallMs: wall, cpuPerWall: cpu / wall, ...spread };
    }
  }
  return out;
}

/** Fact 3: 240 MatMulNBits layers at one row, each with its own bytes; weight GB read per CPU second at two block sizes. */
async function matMulNBitsFact(ort) {
  const layers = 240;
  const out = {};
  for (const block of [32, 128]) {
    const g = new Graph();
    let h = g.input("x", [1, 576]);
    let weightBytes = 0;
    for (let l = 0; l < layers; l++) {
      const [K, N] = l % 2 === 0 ? [576, 1536] : [1536, 576];
      const blocks = Math.ceil(K / block); // MatMulNBits pads the last block (576 = 4.5 × 128)
      const blob = block / 2;
      const w = new Uint8Array(N * blocks * blob);
      // The layer index enters the hash, so no two layers' initializers are equal (ORT would share them).
      for (let i = 0; i < w.length; i++) w[i] = ((i + l * 7919) * 2654435761) >>> 24;
      const scales = Float32Array.from({ length: N * blocks }, (_, i) => 0.001 + ((i * 31 + l) % 97) * 1e-5);
      const wv = g.constant(w, [N, blocks, blob], "uint8", `w${l}`);
      const sv = g.constant(scales, [N * blocks], "float32", `s${l}`);
      h = g.add({ type: "MatMulNBits", domain: "com.microsoft" }, [h, wv, sv], [1, N], "float32", { K, N, bits: 4, block_size: block, accuracy_level: 4 });
      weightBytes += w.length + scales.byteLength;
    }
    const s = await session(ort, g, { y: h }, 1);
    const feed = { x: new ort.Tensor("float32", Float32Array.from({ length: 576 }, (_, i) => Math.cos(i)), [1, 576]) };
    for (let i = 0; i < 20; i++) await s.run(feed);
    const reps = 100;
    const c0 = cpuMs();
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await s.run(feed);
    const cpu = (cpuMs() - c0) / reps;
    const wall = (performance.now() - t0) / reps;
    await s.release();
    out[`block${block}`] = { cpuMsPerRun: cpu, wallMsPerRun: wall, weightMb: weightBytes / 2 ** 20, gbPerCpuS: weightBytes / 1e9 / (cpu / 1000) };
  }
  return out;
}

/** The eval forward at the SmolLM2 shape: CPU ms per batch (median of 2 after 1 warm-up). */
async function forwardFact(ort) {
  const { useOrtBinding } = await dist("engine/ort-binding.js");
  useOrtBinding(ort);
  const api = await dist("index.js");
  const { IDS, TARGETS } = await dist("models/llama/lm-graphs.js");
  const config = api.readLlamaConfig(path.join(shared, "models/smollm2-135m-shape"));
  const rng = new api.Rng(0);
  const weights = new Map();
  for (const [name, shape] of api.llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    else rng.fillNormal(data, 0.02);
    weights.set(name, { data, shape });
  }
  const [B, T] = [8, 256];
  const g = new api.engine.Graph();
  const { graph, outputs } = api.buildLmScoreGraph(config, new api.DenseParams(g, weights, new Set()), B, T);
  const compiled = await api.engine.CompiledGraph.compile(graph, outputs, { threads: 2 });
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(config.vocabSize)));
  const targets = BigInt64Array.from({ length: B * T }, () => BigInt(rng.int(config.vocabSize)));
  const runs = [];
  for (let s = 0; s < 3; s++) {
    const c0 = cpuMs();
    const t0 = performance.now();
    await compiled.run({ [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } });
    if (s > 0) runs.push({ cpuMs: cpuMs() - c0, wallMs: performance.now() - t0 });
  }
  await compiled.release();
  return { cpuMsPerBatch: median(runs.map((r) => r.cpuMs)), wallMsPerBatch: median(runs.map((r) => r.wallMs)), peakRssMb: process.resourceUsage().maxRSS / 1024 };
}

async function child(dir) {
  const ort = await import(pathToFileURL(path.join(path.resolve(dir), "dist/index.js")).href);
  const version = ort.env.versions.node;
  const want = new Set(flags.facts);
  const result = {
    version,
    fetches: want.has("fetches") ? await fetchesFact(ort) : null,
    threads: want.has("threads") ? await threadsFact(ort, flags.rows) : null,
    matMulNBits: want.has("matmulnbits") ? await matMulNBitsFact(ort) : null,
    forward: want.has("forward") ? await forwardFact(ort) : null,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runChild(dir) {
  return new Promise((resolve, reject) => {
    const args = ["--expose-gc", process.argv[1], "--child", dir, "--rows", String(flags.rows), "--facts", flags.facts.join(",")];
    const p = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(JSON.parse(stdout.trim().split("\n").at(-1))) : reject(new Error(`child for ${dir} exited with ${code}`))));
  });
}

/** One line per child: what each measured fact says. */
function summary(res) {
  const parts = [];
  const f = res.fetches;
  if (f) parts.push(`fetches: same buffer back ${f.returnsSameBuffer}, written ${f.preallocatedWritten}, arrayBuffers +${f.preallocatedGrowthMb.toFixed(0)} MiB (plain run +${f.plainGrowthMb.toFixed(0)})`);
  const t = res.threads;
  if (t) {
    const op = (name) => `${name} ${t[`${name}@1`].cpuMs.toFixed(0)} CPU ms at 1 thread, ${t[`${name}@2`].cpuMs.toFixed(0)} at 2, busiest thread ${(100 * t[`${name}@2`].busiestShare).toFixed(0)} %`;
    parts.push(`${op("ReduceLogSumExp")}; ${op("LogSoftmax")}; ${op("LogSoftmax+ReduceSum")}`);
  }
  const m = res.matMulNBits;
  if (m) parts.push(`MatMulNBits GB per CPU s: g32 ${m.block32.gbPerCpuS.toFixed(2)}, g128 ${m.block128.gbPerCpuS.toFixed(2)}`);
  const fw = res.forward;
  if (fw) parts.push(`eval forward ${(fw.cpuMsPerBatch / 1000).toFixed(2)} CPU s per batch (wall ${(fw.wallMsPerBatch / 1000).toFixed(2)} s), peak RSS ${fw.peakRssMb.toFixed(0)} MiB`);
  return parts.join(" | ");
}

if (flags.child) {
  await child(flags.child);
} else {
  const rounds = [];
  for (let r = 0; r < flags.rounds; r++) {
    for (const dir of flags.ort) {
      const load = await sampleLoad(2000);
      const res = await runChild(dir);
      rounds.push({ round: r, dir, otherBusyBefore: load.busy, ...res });
      console.log(`round ${r} ORT ${res.version}: ${summary(res)}`);
    }
  }
  writeJson(flags.out, { machine: machineInfo(), flags: { rounds: flags.rounds, rows: flags.rows, ort: flags.ort }, rounds });
}
