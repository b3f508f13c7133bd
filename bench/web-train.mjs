// Training speed in the page (headless Debian Chromium, onnxruntime-web WASM) against Node
// (onnxruntime-node) in the same run, same threads: PEQA-4 and LoRA training tokens/s, greedy
// decode tokens/s, page load → first training step, and the ceiling — one plain Gemm at the
// model's shapes in both. ref-llama-5m (real weights) and the SmolLM2-135M shape (config only:
// weights N(0, 0.02²) from a seeded generator, norms 1, ref-llama-5m's tokenizer, whose 4096 ids
// lie inside its 49152).
//
// The machine is shared, so the page and Node take turns: after one warm-up step each (it builds
// and compiles the step graph), `--rounds` rounds of `--steps` page steps then `--steps` Node
// steps, and the ratio is taken per round (median over rounds). Every timed piece records its
// wall time, its own CPU time (Chromium's processes through CDP SystemInfo, or this process) and
// the share of the machine's CPU other processes took meanwhile.
//
//   npm run build && node bench/web-train.mjs [--threads 1,2] [--models ref-llama-5m,smollm2-135m-shape]
//     [--rounds 3] [--steps 2] [--batch 4] [--seq 64] [--out bench/results/web-train.json] [--webgpu]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { cpuStat, foreignLoad, median, parseFlags, root, shared } from "./lib/harness.mjs";
import { pageModelFolder, refDir } from "./lib/web-models.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    threads: { type: "list", default: ["1", "2"], help: "thread counts, each in the page and in Node" },
    models: { type: "list", default: ["ref-llama-5m", "smollm2-135m-shape"], help: "models (the SmolLM2 shape runs at the last thread count only)" },
    methods: { type: "list", default: ["peqa", "lora"], help: "training methods" },
    rounds: { type: "int", default: 3, help: "page/Node rounds per method (ratio = median over rounds)" },
    steps: { type: "int", default: 2, help: "timed steps per side per round (ref-llama-5m; the SmolLM2 shape does 1)" },
    batch: { type: "int", default: 4, help: "windows per step" },
    seq: { type: "int", default: 64, help: "tokens per window" },
    "decode-tokens": { type: "int", default: 32, help: "greedy tokens per decode measurement" },
    "no-gemm": { type: "bool", default: false, help: "skip the plain-Gemm ceiling" },
    builds: { type: "bool", default: false, help: "only compare onnxruntime-web's builds: the same step-graph bytes in Node and on the plain and the JSEP build" },
    webgpu: { type: "bool", default: false, help: "also probe the WebGPU EP (SwiftShader; may close the page)" },
    out: { type: "string", default: path.join(root, "bench", "results", "web-train.json"), help: "results JSON (written after every section)" },
  },
  "node bench/web-train.mjs — PEQA-4 and LoRA training and decode tokens/s in Chromium (WASM) vs Node, same threads",
);

const { buildWeb } = await import(path.join(root, "scripts", "build-web.mjs"));
const { startWebServer } = await import(path.join(root, "dist", "cli", "web-server.js"));
const { WebSession, defaultWebTrainOptions } = await import(path.join(root, "dist", "web", "session.js"));
const E = await import(path.join(root, "dist", "engine", "index.js"));
const { Rng } = await import(path.join(root, "dist", "core", "rng.js"));
const { readLlamaConfig } = await import(path.join(root, "dist", "formats", "hf-config.js"));
const ortNode = await import("onnxruntime-node");

const text = fs.readFileSync(path.join(shared, "data", "wikitext-2", "valid.txt"), "utf8").slice(0, 200_000);
const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false };
const PROMPT = "The history of the city";
const FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];
const r2 = (x) => Math.round(x * 100) / 100;
const r3 = (x) => Math.round(x * 1000) / 1000;

/** The folders the page fetches from (/models/<name>/): ref-llama-5m as it is; the shapes written with random weights. */
async function modelFolders(scratch) {
  const out = {};
  for (const name of flags.models) out[name] = await pageModelFolder(name, scratch);
  return out;
}

/** CPU seconds of every Chromium process (CDP SystemInfo), i.e. the page's own CPU. */
async function chromiumCpu(cdp) {
  const { processInfo } = await cdp.send("SystemInfo.getProcessInfo");
  return processInfo.reduce((t, p) => t + p.cpuTime, 0);
}

/** Times `fn` (run on `side`: "page" or "node"): wall s, own CPU s, other processes' share of the machine. */
async function timed(side, cdp, fn) {
  const s0 = cpuStat();
  const own0 = side === "page" ? await chromiumCpu(cdp) : process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const own = side === "page" ? (await chromiumCpu(cdp)) - own0 : (() => {
    const u = process.cpuUsage(own0);
    return (u.user + u.system) / 1e6;
  })();
  const s1 = cpuStat();
  return { value, wall, cpu: own, foreign: foreignLoad(s0, s1, own * 1000) };
}

const results = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, load1AtStart: os.loadavg()[0] },
  chromium: null,
  flags,
  ortWebBuild: null,
  models: {},
};
const save = () => {
  fs.mkdirSync(path.dirname(flags.out), { recursive: true });
  fs.writeFileSync(flags.out, `${JSON.stringify(results, null, 2)}\n`);
};
const log = (msg) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-web-bench-"));
const pageDir = path.join(scratch, "page");
await buildWeb(pageDir);
const folders = await modelFolders(scratch);
const server = await startWebServer({
  root: pageDir,
  port: 0,
  host: "127.0.0.1",
  mounts: { "/models/": scratch, "/ref/": refDir, "/ort/": path.join(root, "node_modules", "onnxruntime-web", "dist") },
});
const modelUrl = (name) => (name === "ref-llama-5m" ? "/ref/" : `/models/${name}/`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
results.chromium = browser.version();
const cdp = await browser.newBrowserCDPSession();

try {
  for (const name of flags.builds ? [] : flags.models) {
    const big = name !== "ref-llama-5m";
    const threadList = big ? [flags.threads.at(-1)] : flags.threads;
    const steps = big ? 1 : flags.steps;
    const rounds = big ? Math.min(2, flags.rounds) : flags.rounds;
    const files = new Map(FILES.map((n) => [n, new Uint8Array(fs.readFileSync(path.join(folders[name], n)))]));
    const entry = (results.models[name] = { threads: {} });
    for (const t of threadList.map(Number)) {
      const row = (entry.threads[t] = {});
      log(`${name}, ${t} thread(s): page load`);
      const context = await browser.newContext();
      const tab = await context.newPage();
      const consoleLines = [];
      tab.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
      tab.on("crash", () => consoleLines.push("the page crashed"));
      const opts = { ...defaultWebTrainOptions, steps: 1 + rounds * steps, lr: 1e-3, batch: flags.batch, seq: flags.seq, heldOut: 0 };
      const load = await timed("page", cdp, async () => {
        await tab.goto(`${server.url}?model=${modelUrl(name)}&threads=${t}`);
        await tab.evaluate(() => window.slimtuneApp.ready);
        const status = await tab.textContent("#status");
        if (!/Model loaded/.test(status)) throw new Error(`the page did not load ${name}: ${status}\n${consoleLines.join("\n")}`);
        return tab.evaluate(async ({ text, opts, spec }) => {
          const s = window.slimtuneApp.state.session;
          s.quantize(spec);
          s.startTraining("peqa", text, { ...opts, steps: 1 });
          const r = await s.trainStep();
          return { loss: r.loss, runtime: window.slimtuneApp.state.runtime, status: document.getElementById("status").textContent };
        }, { text, opts, spec });
      });
      row.pageLoadToFirstPeqaStep = { wallS: r2(load.wall), pageCpuS: r2(load.cpu), foreign: r2(load.foreign), firstLoss: load.value.loss };
      row.pageRuntime = load.value.runtime;
      results.ortWebBuild = load.value.runtime.build ?? "jsep";
      log(`  page load → first PEQA step ${load.wall.toFixed(1)} s (other processes ${(100 * load.foreign).toFixed(0)} %), runtime ${JSON.stringify(load.value.runtime)}`);
      // Node takes the page's first PEQA step too, so both sides train the same scales from here on.
      const node = WebSession.open(files, { threads: t });
      node.quantize(spec);
      node.startTraining("peqa", text, { ...opts, steps: 1 });
      await node.trainStep();
      for (const kind of flags.methods) {
        log(`  ${kind}: warm-up step on both sides`);
        const pageWarm = await timed("page", cdp, () =>
          tab.evaluate(async ({ kind, text, opts }) => {
            const s = window.slimtuneApp.state.session;
            s.startTraining(kind, text, opts);
            return (await s.trainStep()).loss;
          }, { kind, text, opts }),
        );
        const nodeWarm = await timed("node", cdp, async () => {
          node.startTraining(kind, text, opts);
          return (await node.trainStep()).loss;
        });
        const m = { warmupS: { page: r2(pageWarm.wall), node: r2(nodeWarm.wall) }, firstLoss: { page: pageWarm.value, node: nodeWarm.value }, rounds: [] };
        row[kind] = m;
        for (let r = 0; r < rounds; r++) {
          const pageSteps = await timed("page", cdp, () =>
            tab.evaluate(async (steps) => {
              const s = window.slimtuneApp.state.session;
              const out = [];
              for (let i = 0; i < steps; i++) {
                const x = await s.trainStep();
                out.push({ loss: x.loss, run: x.seconds.run, host: x.seconds.host });
              }
              return out;
            }, steps),
          );
          const nodeSteps = await timed("node", cdp, async () => {
            const out = [];
            for (let i = 0; i < steps; i++) {
              const x = await node.trainStep();
              out.push({ loss: x.loss, run: x.seconds.run, host: x.seconds.host });
            }
            return out;
          });
          const tokens = steps * flags.batch * flags.seq;
          const side = (x) => ({
            tokensPerS: r2(tokens / x.wall),
            wallS: r3(x.wall),
            cpuS: r3(x.cpu),
            tokensPerCpuS: r2(tokens / x.cpu),
            runS: r3(x.value.reduce((a, s) => a + s.run, 0)),
            hostS: r3(x.value.reduce((a, s) => a + s.host, 0)),
            foreign: r2(x.foreign),
            losses: x.value.map((s) => r3(s.loss)),
          });
          const round = { page: side(pageSteps), node: side(nodeSteps) };
          round.ratio = r3(round.page.tokensPerS / round.node.tokensPerS);
          round.ratioPerCpuS = r3(round.page.tokensPerCpuS / round.node.tokensPerCpuS);
          m.rounds.push(round);
          log(`  ${kind} round ${r + 1}: page ${round.page.tokensPerS} tok/s (run ${round.page.runS} s, host ${round.page.hostS} s, others ${(100 * round.page.foreign).toFixed(0)} %) | node ${round.node.tokensPerS} tok/s (run ${round.node.runS} s, host ${round.node.hostS} s, others ${(100 * round.node.foreign).toFixed(0)} %) → ${round.ratio}× (per CPU second ${round.ratioPerCpuS}×)`);
        }
        m.pageTokensPerS = median(m.rounds.map((x) => x.page.tokensPerS));
        m.nodeTokensPerS = median(m.rounds.map((x) => x.node.tokensPerS));
        m.ratio = median(m.rounds.map((x) => x.ratio));
        m.ratioPerCpuS = median(m.rounds.map((x) => x.ratioPerCpuS));
        save();
        // Decode with the adapter just trained. A page that runs out of memory closes ("Target
        // crashed"): recorded, and the run goes on with the next model.
        try {
          m.decode = await decodeTurns(tab, node, kind);
          log(`  ${kind}: training ${m.pageTokensPerS} vs ${m.nodeTokensPerS} tok/s → ${m.ratio}× (per CPU s ${m.ratioPerCpuS}×); decode ${m.decode.page} vs ${m.decode.node} tok/s → ${m.decode.ratio}×, same tokens: ${m.decode.rounds.every((d) => d.sameIds)}`);
        } catch (e) {
          m.decode = { error: String(e.message ?? e).split("\n")[0] };
          log(`  ${kind}: training ${m.pageTokensPerS} vs ${m.nodeTokensPerS} tok/s → ${m.ratio}×; decode failed in the page: ${m.decode.error}`);
          row.pageCrashed = tab.isClosed() || !(await tab.evaluate(() => true).catch(() => false));
          save();
          if (row.pageCrashed) break;
        }
        save();
      }
      if (!row.pageCrashed) {
        row.pageMemory = await tab.evaluate(async () => {
          const m = await performance.measureUserAgentSpecificMemory?.().catch((e) => ({ error: String(e) }));
          return { jsHeapUsedMiB: performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : null, uaSpecificMiB: m?.bytes ? m.bytes / 2 ** 20 : (m?.error ?? null) };
        });
      }
      row.pageConsoleWarnings = consoleLines.filter((l) => !l.startsWith("log:")).slice(0, 10);
      await node.release();
      await context.close().catch(() => {});
      save();
      if (!flags["no-gemm"]) {
        row.gemm = await gemmCeiling(readLlamaConfig(folders[name]), t);
        save();
      }
    }
  }
  if (flags.builds) {
    for (const t of flags.threads.map(Number)) {
      results.builds = { ...results.builds, [t]: await buildComparison(t) };
      save();
    }
  }
  if (flags.webgpu) {
    results.webgpuSwiftShader = await webgpuProbe();
    save();
  }
} finally {
  await browser.close();
  await server.close();
  fs.rmSync(scratch, { recursive: true, force: true });
}
save();
log(`results → ${path.relative(process.cwd(), flags.out)}`);

/** Greedy decode with the adapter just trained: the first call compiles the decoder, then page and Node take turns (2 rounds, best of each). */
async function decodeTurns(tab, node, kind) {
  const n = flags["decode-tokens"];
  await tab.evaluate(async ({ kind, prompt, n }) => {
    const s = window.slimtuneApp.state.session;
    s.keepAdapter(kind);
    await s.generate(prompt, n);
  }, { kind, prompt: PROMPT, n });
  node.keepAdapter(kind);
  await node.generate(PROMPT, n);
  const rounds = [];
  for (let r = 0; r < 2; r++) {
    const p = await timed("page", cdp, () => tab.evaluate(async ({ prompt, n }) => window.slimtuneApp.state.session.generate(prompt, n), { prompt: PROMPT, n }));
    const q = await timed("node", cdp, () => node.generate(PROMPT, n));
    rounds.push({ page: r2(p.value.decodeTokensPerS), node: r2(q.value.decodeTokensPerS), sameIds: JSON.stringify(p.value.ids) === JSON.stringify(q.value.ids), foreign: { page: r2(p.foreign), node: r2(q.foreign) } });
  }
  const page = Math.max(...rounds.map((d) => d.page));
  const node_ = Math.max(...rounds.map((d) => d.node));
  return { rounds, page, node: node_, ratio: r3(page / node_) };
}

/**
 * One plain Gemm per linear shape of the step (M = batch·seq tokens): x·Wᵀ for q/o (C→C), gate/up
 * (C→F), down (F→C) and the LM head (C→V), in onnxruntime-node and in the page on the same
 * onnxruntime-web build and threads, taking turns (3 rounds, median). The kernels' own ratio: the
 * ceiling for a step made mostly of these.
 */
async function gemmCeiling(c, threads) {
  const M = flags.batch * flags.seq;
  const shapes = [
    ["q/o C→C", c.hiddenSize, c.hiddenSize],
    ["gate/up C→F", c.intermediateSize, c.hiddenSize],
    ["down F→C", c.hiddenSize, c.intermediateSize],
    ["LM head C→V", c.vocabSize, c.hiddenSize],
  ];
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(server.url);
  await tab.evaluate(async ({ threads, build }) => {
    const ort = await import(build === "jsep" ? "/ort/ort.min.mjs" : "/ort/ort.wasm.min.mjs");
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.wasmPaths = "/ort/";
    window.benchOrt = ort;
    window.benchSessions = {};
  }, { threads, build: results.ortWebBuild });
  const sessionOptions = { interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all", enableCpuMemArena: true, enableMemPattern: false };
  const out = [];
  for (const [label, N, K] of shapes) {
    const g = new E.Graph();
    const x = g.input("x", [M, K]);
    const w = g.input("w", [N, K]);
    const bytes = E.toOnnxBytes(g, { y: E.gemm(x, w, { transB: true }) }, new Set());
    const rng = new Rng(1);
    const rand = (n) => {
      const a = new Float32Array(n);
      rng.fillNormal(a, 1);
      return a;
    };
    const xs = rand(M * K);
    const ws = rand(N * K);
    const sess = await ortNode.InferenceSession.create(bytes, { ...sessionOptions, intraOpNumThreads: threads });
    const feeds = { x: new ortNode.Tensor("float32", xs, [M, K]), w: new ortNode.Tensor("float32", ws, [N, K]) };
    await tab.evaluate(async ({ key, bytes, M, N, K, so }) => {
      const ort = window.benchOrt;
      const rand = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i));
      const sess = await ort.InferenceSession.create(new Uint8Array(bytes), { ...so, executionProviders: ["wasm"] });
      window.benchSessions[key] = { sess, feeds: { x: new ort.Tensor("float32", rand(M * K), [M, K]), w: new ort.Tensor("float32", rand(N * K), [N, K]) } };
    }, { key: label, bytes: [...bytes], M, N, K, so: sessionOptions });
    const pageRun = (n) => tab.evaluate(async ({ key, n }) => {
      const { sess, feeds } = window.benchSessions[key];
      for (let i = 0; i < n; i++) await sess.run(feeds);
    }, { key: label, n });
    const nodeRun = async (n) => {
      for (let i = 0; i < n; i++) await sess.run(feeds);
    };
    // Enough runs for ~0.3 s on the native side, the same count in the page.
    await nodeRun(3);
    await pageRun(3);
    const probe = await timed("node", cdp, () => nodeRun(3));
    const n = Math.max(3, Math.min(200, Math.round((0.3 / probe.wall) * 3)));
    const rounds = [];
    for (let r = 0; r < 3; r++) {
      const p = await timed("page", cdp, () => pageRun(n));
      const q = await timed("node", cdp, () => nodeRun(n));
      rounds.push({ pageMs: (1000 * p.wall) / n, nodeMs: (1000 * q.wall) / n, foreign: { page: r2(p.foreign), node: r2(q.foreign) } });
    }
    await sess.release();
    const flops = 2 * M * N * K;
    const pageMs = median(rounds.map((x) => x.pageMs));
    const nodeMs = median(rounds.map((x) => x.nodeMs));
    const row = { gemm: `${label}: [${M}, ${K}]·[${N}, ${K}]ᵀ`, pageGflops: r2(flops / pageMs / 1e6), nodeGflops: r2(flops / nodeMs / 1e6), ratio: r3(median(rounds.map((x) => x.nodeMs / x.pageMs))), runsPerRound: n, rounds: rounds.map((x) => ({ pageMs: r3(x.pageMs), nodeMs: r3(x.nodeMs), foreign: x.foreign })) };
    out.push(row);
    log(`  Gemm ${row.gemm}, ${threads} thread(s): page ${row.pageGflops} GFLOPS, node ${row.nodeGflops} GFLOPS → ${row.ratio}×`);
  }
  await context.close();
  return out;
}

/**
 * WebGPU: Chromium with --enable-unsafe-webgpu (no --disable-gpu) offers SwiftShader, a software
 * adapter; one PEQA and one LoRA step on it, each bounded by a time limit because the page has
 * been seen to close on the first run.
 */
async function webgpuProbe() {
  const gpu = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const consoleLines = [];
  try {
    const tab = await gpu.newPage();
    tab.on("crash", () => consoleLines.push("the page crashed"));
    tab.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
    await tab.goto(`${server.url}?model=/ref/&threads=${flags.threads.at(-1)}&ep=webgpu`);
    await tab.evaluate(() => window.slimtuneApp.ready);
    const opts = { ...defaultWebTrainOptions, steps: 2, lr: 1e-3, batch: flags.batch, seq: flags.seq, heldOut: 0 };
    const limit = new Promise((resolve) => setTimeout(() => resolve({ error: "no answer within 180 s (the page closed or hung)" }), 180_000));
    const probe = tab.evaluate(async ({ text, opts, spec }) => {
      const out = { status: document.getElementById("status").textContent, steps: {} };
      const s = window.slimtuneApp.state.session;
      for (const kind of ["peqa", "lora"]) {
        try {
          if (!s.isQuantized) s.quantize(spec);
          s.startTraining(kind, text, opts);
          const r = await s.trainStep();
          const t1 = performance.now();
          await s.trainStep();
          out.steps[kind] = { firstLoss: r.loss, secondStepS: (performance.now() - t1) / 1000 };
        } catch (e) {
          out.steps[kind] = { error: String(e.message ?? e).slice(0, 400) };
        }
      }
      return out;
    }, { text, opts, spec });
    const out = await Promise.race([probe.catch((e) => ({ error: String(e.message ?? e).split("\n")[0] })), limit]);
    return { ...out, console: consoleLines.filter((l) => !l.startsWith("log:")).slice(0, 20) };
  } finally {
    await gpu.close();
  }
}

/**
 * The step graph alone, without the page around it: ref-llama-5m's PEQA and LoRA step graphs as
 * ONNX bytes with one batch of feeds, run by session.run in onnxruntime-node and in two pages, one
 * on onnxruntime-web's plain SIMD build (ort.wasm.min.mjs) and one on its JSEP build (ort.min.mjs,
 * what `import "onnxruntime-web"` gives), with the session options CompiledGraph uses; the three
 * take turns, `--rounds` rounds of `--steps` runs each after one warm-up run.
 */
async function buildComparison(threads) {
  const { lmTask } = await import(path.join(root, "dist", "train", "lm-task.js"));
  const files = new Map(FILES.map((n) => [n, new Uint8Array(fs.readFileSync(path.join(refDir, n)))]));
  const s = WebSession.open(files, { threads });
  s.quantize(spec);
  const tokens = Int32Array.from(s.tokenizer.encode(text.slice(0, 50_000)));
  const sessionOptions = { interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all", enableCpuMemArena: true, enableMemPattern: false };
  const builds = { wasm: "/ort/ort.wasm.min.mjs", jsep: "/ort/ort.min.mjs" };
  const tabs = {};
  for (const [build, url] of Object.entries(builds)) {
    const context = await browser.newContext();
    const tab = await context.newPage();
    await tab.goto(server.url);
    await tab.evaluate(async ({ url, threads }) => {
      const ort = await import(url);
      ort.env.wasm.numThreads = threads;
      ort.env.wasm.wasmPaths = "/ort/";
      window.benchOrt = ort;
      window.benchSessions = {};
    }, { url, threads });
    tabs[build] = { context, tab };
  }
  const out = {};
  for (const kind of flags.methods) {
    const m = s.method(kind);
    const task = lmTask(tokens, { batch: flags.batch, seq: flags.seq, heldOut: 0, evalTokens: 1 << 16 });
    const batch = task.sampler(new Rng(0)).next();
    const { graph, outputs } = task.stepGraph(m, [...m.trainable.keys()], batch.shape, { checkpoint: false, replicas: 1 }).build();
    const bytes = E.toOnnxBytes(graph, outputs, new Set());
    // The pages fetch the graph from the server (/models/ is the scratch folder): handing megabytes to page.evaluate is slow.
    fs.writeFileSync(path.join(scratch, `step-${kind}.onnx`), bytes);
    const dtypes = Object.fromEntries(graph.inputs.map((v) => [v.name, v.dtype]));
    const feeds = { ...Object.fromEntries(m.trainable), ...batch.feeds };
    const sess = await ortNode.InferenceSession.create(bytes, { ...sessionOptions, intraOpNumThreads: threads });
    const nodeFeeds = Object.fromEntries(Object.entries(feeds).map(([n, x]) => [n, new ortNode.Tensor(dtypes[n], x.data, x.shape)]));
    const pageFeeds = Object.fromEntries(Object.entries(feeds).map(([n, x]) => [n, { dtype: dtypes[n], data: [...x.data], shape: x.shape }]));
    const create = {};
    for (const [build, { tab }] of Object.entries(tabs)) {
      create[build] = await tab.evaluate(async ({ kind, feeds, so }) => {
        const ort = window.benchOrt;
        const typed = { float32: Float32Array, int32: Int32Array };
        const bytes = new Uint8Array(await (await fetch(`/models/step-${kind}.onnx`)).arrayBuffer());
        const t0 = performance.now();
        const sess = await ort.InferenceSession.create(bytes, { ...so, executionProviders: ["wasm"] });
        const ms = performance.now() - t0;
        const f = Object.fromEntries(Object.entries(feeds).map(([n, x]) => [n, new ort.Tensor(x.dtype, x.dtype === "int64" ? BigInt64Array.from(x.data.map(BigInt)) : typed[x.dtype].from(x.data), x.shape)]));
        await sess.run(f);
        window.benchSessions[kind] = { sess, f };
        return ms / 1000;
      }, { kind, feeds: pageFeeds, so: sessionOptions });
    }
    await sess.run(nodeFeeds);
    const rounds = [];
    for (let r = 0; r < flags.rounds; r++) {
      const round = {};
      const q = await timed("node", cdp, async () => {
        for (let i = 0; i < flags.steps; i++) await sess.run(nodeFeeds);
      });
      round.node = { runS: r3(q.wall / flags.steps), foreign: r2(q.foreign) };
      for (const [build, { tab }] of Object.entries(tabs)) {
        const p = await timed("page", cdp, () => tab.evaluate(async ({ kind, n }) => {
          const { sess, f } = window.benchSessions[kind];
          for (let i = 0; i < n; i++) await sess.run(f);
        }, { kind, n: flags.steps }));
        round[build] = { runS: r3(p.wall / flags.steps), foreign: r2(p.foreign), vsNode: r3(q.wall / p.wall) };
      }
      rounds.push(round);
      log(`  session.run only, ${kind}, ${threads} thread(s): node ${round.node.runS} s | plain wasm ${round.wasm.runS} s (${round.wasm.vsNode}×) | jsep ${round.jsep.runS} s (${round.jsep.vsNode}×); others ${Object.values(round).map((x) => `${(100 * x.foreign).toFixed(0)} %`).join(" / ")}`);
    }
    await sess.release();
    const nodeProfile = await profileInNode(bytes, nodeFeeds, threads, sessionOptions, kind);
    log(`  Node's kernel time by op, ${kind}: ${nodeProfile.byOp.slice(0, 6).map((o) => `${o.op} ${(100 * o.share).toFixed(0)} %`).join(", ")}`);
    out[kind] = {
      nodeProfile,
      sessionCreateS: { wasm: r2(create.wasm), jsep: r2(create.jsep) },
      rounds,
      wasmVsNode: median(rounds.map((x) => x.wasm.vsNode)),
      jsepVsNode: median(rounds.map((x) => x.jsep.vsNode)),
      wasmVsJsep: median(rounds.map((x) => r3(x.jsep.runS / x.wasm.runS))),
    };
  }
  for (const { context } of Object.values(tabs)) await context.close();
  await s.release();
  return out;
}

/** ORT's own profile of the step graph in Node (3rd run): kernel time by op type, as a share of all kernels. */
async function profileInNode(bytes, feeds, threads, sessionOptions, kind) {
  const prefix = path.join(scratch, `profile-${kind}-${threads}`);
  const sess = await ortNode.InferenceSession.create(bytes, { ...sessionOptions, intraOpNumThreads: threads, enableProfiling: true, profileFilePrefix: prefix });
  for (let i = 0; i < 3; i++) await sess.run(feeds);
  sess.endProfiling();
  await sess.release();
  const file = fs.readdirSync(scratch).filter((f) => f.startsWith(path.basename(prefix))).sort().at(-1);
  const events = JSON.parse(fs.readFileSync(path.join(scratch, file), "utf8"));
  const last = events.filter((e) => e.name === "model_run").at(-1);
  const kernels = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time") && e.ts >= last.ts && e.ts <= last.ts + last.dur);
  const total = kernels.reduce((t, e) => t + e.dur, 0);
  const byOp = new Map();
  for (const e of kernels) byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + e.dur);
  return {
    modelRunMs: r2(last.dur / 1000),
    kernelMs: r2(total / 1000),
    byOp: [...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => ({ op, ms: r2(us / 1000), share: r3(us / total) })),
  };
}
