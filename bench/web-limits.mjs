// The largest model that trains in the page, per method, measured in headless Debian Chromium
// (onnxruntime-web WASM): for each model × method, a fresh page (its own renderer process) runs
// what the page's controls run — read the folder's files, [quantize to 4 bits for PEQA], one
// training step at the page's batch × seq, then a greedy decode of a few tokens with the adapter —
// stage by stage, each bounded in time. What happened is recorded per stage: done (with its wall
// time), an error thrown in the page (its message: a WASM out-of-memory abort, a RangeError, …),
// or the renderer crashing ("Target crashed"). The renderer's peak resident memory is sampled from
// /proc every 0.5 s. The page's own memory check (src/web/memory-limit.ts) is bypassed, so the
// measurement does not depend on it; the row records what that check says for the same run.
//
// Models: ref-llama-5m (real weights) and the config-only shapes in shared/models with seeded
// N(0, 0.02²) weights (bench/lib/random-weights.mjs) and ref-llama-5m's tokenizer.
//
//   npx tsc -p tsconfig.build.json && node bench/web-limits.mjs [--models ref-llama-5m,smollm2-135m-shape,qwen2.5-0.5b-shape]
//     [--methods peqa,lora] [--batch 4] [--seq 64] [--threads 2] [--decode-tokens 8] [--same-page]
//     [--out bench/results/web-limits.json]
// --same-page runs the methods one after another in one page (PEQA, then LoRA), as bench/web-train.mjs
// does; that is how the decode crash of session 26 was seen.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { cpuStat, foreignLoad, parseFlags, root, shared } from "./lib/harness.mjs";
import { pageModelFolder, refDir } from "./lib/web-models.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    models: { type: "list", default: ["ref-llama-5m", "smollm2-135m-shape", "qwen2.5-0.5b-shape"], help: "models, smallest first" },
    methods: { type: "list", default: ["peqa", "lora"], help: "training methods" },
    batch: { type: "int", default: 4, help: "windows per step (the page's default)" },
    seq: { type: "int", default: 64, help: "tokens per window (the page's default)" },
    threads: { type: "int", default: 2, help: "WASM threads" },
    "decode-tokens": { type: "int", default: 8, help: "greedy tokens after the step" },
    "decode-rounds": { type: "int", default: 1, help: "greedy decodes after the step (bench/web-train.mjs does 3)" },
    "stage-timeout": { type: "int", default: 900, help: "seconds a stage may take before it is recorded as hung" },
    "same-page": { type: "bool", default: false, help: "every method in one page, one after another (as bench/web-train.mjs)" },
    out: { type: "string", default: path.join(root, "bench", "results", "web-limits.json"), help: "results JSON (written after every row)" },
  },
  "node bench/web-limits.mjs — which models train a step (and decode) in the page with PEQA-4 and with LoRA",
);

const { buildWeb } = await import(path.join(root, "scripts", "build-web.mjs"));
const { startWebServer } = await import(path.join(root, "dist", "cli", "web-server.js"));

const text = fs.readFileSync(path.join(shared, "data", "wikitext-2", "valid.txt"), "utf8").slice(0, 100_000);
const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false };
const r2 = (x) => Math.round(x * 100) / 100;
const log = (msg) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

const results = { date: new Date().toISOString(), machine: { cpus: os.cpus().length, memTotalGiB: r2(os.totalmem() / 2 ** 30), load1AtStart: os.loadavg()[0] }, chromium: null, flags, rows: [] };
const save = () => {
  fs.mkdirSync(path.dirname(flags.out), { recursive: true });
  fs.writeFileSync(flags.out, `${JSON.stringify(results, null, 2)}\n`);
};

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-web-limits-"));

/** Resident memory of every Chromium renderer, sampled until stopped: the peak of the largest one. */
function rssSampler(cdp) {
  let peakKiB = 0;
  let stopped = false;
  const rssKiB = (pid) => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      return 0; // the process ended
    }
  };
  const loop = (async () => {
    while (!stopped) {
      const info = await cdp.send("SystemInfo.getProcessInfo").catch(() => null);
      for (const p of info?.processInfo ?? []) if (p.type === "renderer") peakKiB = Math.max(peakKiB, rssKiB(p.id));
      await new Promise((done) => setTimeout(done, 500));
    }
  })();
  return {
    get peakGiB() {
      return r2(peakKiB / 2 ** 20);
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** CPU seconds of every Chromium process (CDP SystemInfo): the page's own CPU, left out of the others' share. */
async function chromiumCpu() {
  const info = await cdp.send("SystemInfo.getProcessInfo").catch(() => null);
  return (info?.processInfo ?? []).reduce((t, p) => t + p.cpuTime, 0);
}

/** Runs one stage in the page: done with its wall time, an error thrown there, a crash, or no answer in time. */
async function stage(tab, crashed, name, fn, arg) {
  const t0 = performance.now();
  const s0 = cpuStat();
  const own0 = await chromiumCpu();
  const limit = new Promise((resolve) => setTimeout(() => resolve({ outcome: "hung", error: `no answer within ${flags["stage-timeout"]} s` }), flags["stage-timeout"] * 1000));
  const run = tab.evaluate(fn, arg).then(
    (value) => ({ outcome: "done", value }),
    (e) => (crashed.value ? { outcome: "crashed", error: "the page crashed (Target crashed)" } : { outcome: "error", error: String(e.message ?? e).split("\n").slice(0, 3).join(" ").slice(0, 400) }),
  );
  const r = await Promise.race([run, limit]);
  const wall = (performance.now() - t0) / 1000;
  if (r.outcome !== "crashed" && r.outcome !== "hung") r.wasmHeapGiB = await tab.evaluate(() => Math.max(0, ...window.__wasmMemories.map((m) => m.buffer.byteLength)) / 2 ** 30).then(r2, () => null);
  const own = Math.max(0, (await chromiumCpu()) - own0);
  return { stage: name, ...r, wallS: r2(wall), pageCpuS: r2(own), foreign: r2(foreignLoad(s0, cpuStat(), own * 1000)) };
}

const pageStages = {
  async open({ base }) {
    const slimtune = window.slimtuneApp.slimtune;
    const files = await slimtune.fetchModelFiles(base, ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    const s = slimtune.WebSession.open(files, {});
    window.slimtuneApp.state.session = s;
    return { parameters: s.parameterCount };
  },
  async check({ run, method }) {
    const slimtune = window.slimtuneApp.slimtune;
    const s = window.slimtuneApp.state.session;
    const limit = slimtune.pageMemoryLimit({ deviceMemoryGiB: navigator.deviceMemory, jsHeapLimitBytes: performance.memory?.jsHeapSizeLimit });
    const fit = slimtune.pageMemoryPlan(s.model.config, run, limit).find((f) => f.method === method);
    // heapGiB: the page's predicted WASM heap (memory-limit.ts' PAGE_HEAP_FIT), absent before it was calibrated.
    return { limitGiB: limit.bytes / 2 ** 30, estimateGiB: fit.estimate.totalBytes / 2 ** 30, ...(fit.heapBytes ? { heapGiB: fit.heapBytes / 2 ** 30 } : {}), fits: fit.fits };
  },
  async quantize({ spec }) {
    window.slimtuneApp.state.session.quantize(spec);
    return null;
  },
  async step({ method, text, opts }) {
    const s = window.slimtuneApp.state.session;
    s.startTraining(method, text, opts);
    const r = await s.trainStep();
    return { loss: r.loss, tokensPerS: r.tokensPerSecond };
  },
  async decode({ method, n }) {
    const s = window.slimtuneApp.state.session;
    s.keepAdapter(method);
    const r = await s.generate("The history of the city", n);
    return { tokens: r.ids.length, decodeTokensPerS: r.decodeTokensPerS };
  },
};

const pageDir = path.join(scratch, "page");
await buildWeb(pageDir);
const server = await startWebServer({ root: pageDir, port: 0, host: "127.0.0.1", mounts: { "/models/": scratch, "/ref/": refDir } });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
results.chromium = browser.version();
const cdp = await browser.newBrowserCDPSession();

/** A fresh page (its own renderer) with the model's files served; the page's session is made by the `open` stage. */
async function freshPage() {
  const context = await browser.newContext();
  // WebAssembly memories the page creates (ORT's heap), so each stage can read how large it has grown.
  await context.addInitScript(() => {
    const Memory = WebAssembly.Memory;
    window.__wasmMemories = [];
    WebAssembly.Memory = function (descriptor) {
      const m = new Memory(descriptor);
      window.__wasmMemories.push(m);
      return m;
    };
    WebAssembly.Memory.prototype = Memory.prototype;
  });
  const tab = await context.newPage();
  const crashed = { value: false };
  const consoleLines = [];
  tab.on("crash", () => {
    crashed.value = true;
  });
  tab.on("console", (m) => {
    if (m.type() !== "log") consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300));
  });
  await tab.goto(`${server.url}?threads=${flags.threads}`);
  await tab.evaluate(() => window.slimtuneApp.ready);
  return { context, tab, crashed, consoleLines };
}

try {
  for (const name of flags.models) {
    log(`${name}: preparing the folder`);
    const dir = await pageModelFolder(name, scratch);
    const base = name === "ref-llama-5m" ? "/ref/" : `/models/${name}/`;
    const run = { batch: flags.batch, seq: flags.seq, groupSize: spec.groupSize, loraRank: 8 };
    const opts = { steps: 1, lr: 1e-3, warmupSteps: 0, minLrRatio: 1, weightDecay: 0, clip: 1, seed: 0, batch: flags.batch, seq: flags.seq, heldOut: 0 };
    const groups = flags["same-page"] ? [flags.methods] : flags.methods.map((m) => [m]);
    for (const methods of groups) {
      const page = await freshPage();
      const rss = rssSampler(cdp);
      const stages = [];
      const go = async (label, fn, arg) => {
        if (stages.length && stages.at(-1).outcome !== "done") return false;
        log(`  ${name} ${methods.join("+")}: ${label}…`);
        const r = await stage(page.tab, page.crashed, label, fn, arg);
        r.peakRssGiB = rss.peakGiB;
        stages.push(r);
        log(`    ${r.outcome} in ${r.wallS} s${r.error ? `: ${r.error}` : ""}${r.value ? ` ${JSON.stringify(r.value)}` : ""} (WASM heap ${r.wasmHeapGiB ?? "?"} GiB, renderer peak RSS so far ${r.peakRssGiB} GiB, others ${Math.round(100 * r.foreign)} %)`);
        return r.outcome === "done";
      };
      await go("open", pageStages.open, { base });
      const checks = {};
      for (const method of methods) {
        if (await go(`check ${method}`, pageStages.check, { run, method })) checks[method] = stages.at(-1).value;
        if (method === "peqa" && !(await page.tab.evaluate(() => window.slimtuneApp.state.session?.isQuantized).catch(() => true))) await go("quantize", pageStages.quantize, { spec });
        await go(`${method} step`, pageStages.step, { method, text, opts });
        for (let d = 0; d < flags["decode-rounds"]; d++) await go(`${method} decode${d ? ` ${d + 1}` : ""}`, pageStages.decode, { method, n: flags["decode-tokens"] });
      }
      await rss.stop();
      const last = stages.at(-1);
      const outcome = last.outcome === "done" ? "trains and decodes" : `${last.outcome} at ${last.stage}`;
      results.rows.push({ model: name, methods, parameters: stages[0].value?.parameters ?? null, pageCheck: checks, outcome, peakRssGiB: rss.peakGiB, stages, console: page.consoleLines.slice(0, 12) });
      log(`  → ${name} ${methods.join("+")}: ${outcome}, renderer peak RSS ${rss.peakGiB} GiB`);
      save();
      await page.context.close().catch(() => {});
    }
    if (dir !== refDir) fs.rmSync(dir, { recursive: true, force: true });
  }
} finally {
  await browser.close();
  await server.close();
  fs.rmSync(scratch, { recursive: true, force: true });
}
save();
log(`results → ${path.relative(process.cwd(), flags.out)}`);
process.exit(0); // the static server's keep-alive sockets would hold the process open
