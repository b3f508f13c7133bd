// Training speed in the page (headless Debian Chromium, onnxruntime-web WASM) against Node
// (onnxruntime-node) in the same run, same threads, on ref-llama-5m: PEQA-4 and LoRA tokens/s over
// a few steps after one warm-up step (the warm-up compiles the step graph), greedy decode tokens/s,
// page load → first training step, the page's memory, and what happens on WebGPU.
//
//   npm run build && node bench/web-train.mjs [--threads 2] [--steps 5] [--batch 4] [--seq 64]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { root, parseFlags } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    threads: { type: "int", default: 2, help: "threads in the page and in Node" },
    steps: { type: "int", default: 5, help: "timed steps per method (after one warm-up step)" },
    batch: { type: "int", default: 4, help: "windows per step" },
    seq: { type: "int", default: 64, help: "tokens per window" },
  },
  "node bench/web-train.mjs — PEQA-4 and LoRA training tokens/s in Chromium (WASM) vs Node",
);

const { buildWeb } = await import(path.join(root, "scripts", "build-web.mjs"));
const { startWebServer } = await import(path.join(root, "dist", "cli", "web-server.js"));
const { WebSession, defaultWebTrainOptions } = await import(path.join(root, "dist", "web", "session.js"));
const shared = path.resolve(root, "..", "shared");
const modelDir = path.join(shared, "models", "ref-llama-5m");
const text = fs.readFileSync(path.join(shared, "data", "wikitext-2", "valid.txt"), "utf8").slice(0, 200_000);
/** Console lines of the WebGPU probe's page, kept when the page dies. */
let lastConsole = [];
const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false };
const opts = { ...defaultWebTrainOptions, steps: flags.steps + 1, lr: 1e-3, batch: flags.batch, seq: flags.seq, heldOut: 0 };

/** Runs in the page or in Node: one warm-up step, then `steps` timed ones; tokens/s of the timed ones. */
async function measure(session, kind, text, opts, spec) {
  if (!session.isQuantized) session.quantize(spec);
  session.startTraining(kind, text, opts);
  const t0 = performance.now();
  await session.trainStep();
  const warmup = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  for (let i = 1; i < opts.steps; i++) await session.trainStep();
  const seconds = (performance.now() - t1) / 1000;
  session.keepAdapter(kind);
  const g = await session.generate("The history of the city", 32);
  await session.generate("The history of the city", 32);
  const g2 = await session.generate("The history of the city", 32);
  return { tokensPerS: ((opts.steps - 1) * opts.batch * opts.seq) / seconds, warmupS: warmup, decodeTokensPerS: Math.max(g.decodeTokensPerS, g2.decodeTokensPerS) };
}

const page = path.join(os.tmpdir(), `slimtune-web-bench-${process.pid}`);
await buildWeb(page);
const server = await startWebServer({ root: page, port: 0, host: "127.0.0.1", mounts: { "/models/": path.join(shared, "models") } });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const results = { machine: { cpus: os.cpus().length, load1: os.loadavg()[0] }, threads: flags.threads, batch: flags.batch, seq: flags.seq, steps: flags.steps };
try {
  const tab = context.pages()[0] ?? (await context.newPage());
  const loadStart = Date.now();
  await tab.goto(`${server.url}?model=/models/ref-llama-5m/&threads=${flags.threads}`);
  await tab.evaluate(() => window.slimtuneApp.ready);
  const firstStep = await tab.evaluate(async ({ text, opts, spec }) => {
    const s = window.slimtuneApp.state.session;
    s.quantize(spec);
    s.startTraining("peqa", text, { ...opts, steps: 1 });
    return (await s.trainStep()).loss;
  }, { text, opts, spec });
  results.pageLoadToFirstPeqaStepS = (Date.now() - loadStart) / 1000;
  results.wasmFirstPeqaLoss = firstStep;
  results.page = {};
  results.node = {};
  const measureSrc = measure.toString();
  for (const kind of ["peqa", "lora"]) {
    results.page[kind] = await tab.evaluate(async ({ src, kind, text, opts, spec }) => {
      const fn = new Function(`return (${src})`)();
      return fn(window.slimtuneApp.state.session, kind, text, opts, spec);
    }, { src: measureSrc, kind, text, opts, spec });
    const files = new Map(["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"].map((n) => [n, new Uint8Array(fs.readFileSync(path.join(modelDir, n)))]));
    const node = WebSession.open(files, { threads: flags.threads });
    results.node[kind] = await measure(node, kind, text, opts, spec);
    await node.release();
    results.page[kind].vsNode = results.page[kind].tokensPerS / results.node[kind].tokensPerS;
  }
  results.pageMemory = await tab.evaluate(async () => {
    const m = await performance.measureUserAgentSpecificMemory?.().catch((e) => ({ error: String(e) }));
    return { jsHeapUsedMiB: performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : null, uaSpecificMiB: m?.bytes ? m.bytes / 2 ** 20 : (m?.error ?? null) };
  });

  // WebGPU: what headless Chromium offers with the test flags (--disable-gpu: no adapter), and with
  // --enable-unsafe-webgpu (SwiftShader, a software adapter), and whether PEQA/LoRA steps run on it.
  results.webgpuWithTestFlags = await webgpuProbe(context);
  const gpuContext = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-chromium-gpu-")), {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    results.webgpuSwiftShader = await webgpuProbe(gpuContext);
  } catch (e) {
    results.webgpuSwiftShader = { error: String(e.message ?? e).split("\n")[0], console: lastConsole };
  } finally {
    await gpuContext.close();
  }
} finally {
  await context.close();
  await server.close();
  fs.rmSync(profile, { recursive: true, force: true });
  fs.rmSync(page, { recursive: true, force: true });
}
console.log(JSON.stringify(results, null, 2));

async function webgpuProbe(ctx) {
  const gpuTab = await ctx.newPage();
  const consoleLines = [];
  lastConsole = consoleLines;
  gpuTab.on("crash", () => consoleLines.push("the page crashed"));
  gpuTab.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
  await gpuTab.goto(`${server.url}?model=/models/ref-llama-5m/&threads=${flags.threads}&ep=webgpu`);
  await gpuTab.evaluate(() => window.slimtuneApp.ready);
  const out = await gpuTab.evaluate(async ({ text, opts, spec }) => {
    const out = { navigatorGpu: "gpu" in navigator, adapter: null, step: null, status: document.getElementById("status").textContent };
    try {
      const adapter = await navigator.gpu?.requestAdapter();
      out.adapter = adapter ? (adapter.info ? `${adapter.info.vendor} ${adapter.info.architecture} ${adapter.info.description}` : "an adapter") : "none";
    } catch (e) {
      out.adapter = `requestAdapter failed: ${e.message}`;
    }
    out.steps = {};
    const s = window.slimtuneApp.state.session;
    for (const kind of ["peqa", "lora"]) {
      try {
        if (!s.isQuantized) s.quantize(spec);
        s.startTraining(kind, text, { ...opts, steps: 2 });
        const t0 = performance.now();
        const r = await s.trainStep();
        const t1 = performance.now();
        await s.trainStep();
        out.steps[kind] = { firstLoss: r.loss, firstStepS: (t1 - t0) / 1000, secondStepS: (performance.now() - t1) / 1000 };
      } catch (e) {
        out.steps[kind] = { error: String(e.message ?? e).slice(0, 400) };
      }
    }
    return out;
  }, { text, opts, spec });
  out.console = consoleLines.filter((l) => !l.startsWith("log:")).slice(0, 20);
  await gpuTab.close();
  return out;
}
