// Shared helpers for bench/peqa-experiment.mjs and bench/finegates-experiment.mjs: flag parsing,
// running the slimtune CLI and the PyTorch peer as child processes (each its own process, timed by
// /usr/bin/time so its peak RSS is its own), waiting for a quiet machine before timed runs, and
// measuring how much CPU other processes took while a child ran.

import { spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const cliPath = path.join(root, "dist/cli/main.js");
export const shared = process.env.SLIMTUNE_SHARED ?? path.resolve(root, "../shared");
export const peerScript = path.join(shared, "bench/torch_peer.py");
export const baseModel = path.join(shared, "models/ref-llama-5m");
export const wikiValid = path.join(shared, "data/wikitext-2/valid.txt");
export const wikiTest = path.join(shared, "data/wikitext-2/test.txt");
export const sstTrain = path.join(shared, "data/sst-2/train.tsv");
export const sstDev = path.join(shared, "data/sst-2/dev.tsv");
export const python = process.env.SLIMTUNE_PYTHON ?? "/usr/bin/python3";

// ---------------------------------------------------------------------------------------------
// flags

/**
 * Parses `--name value` flags against a spec { name: { type: "int"|"float"|"string"|"list"|"bool", default, help } }.
 * `--help` prints the spec and exits.
 */
export function parseFlags(argv, spec, usage) {
  const out = Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, s.default]));
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(`${usage}\n\nflags:\n`);
      for (const [k, s] of Object.entries(spec)) process.stdout.write(`  --${k}${s.type === "bool" ? "" : ` <${s.type}>`}  ${s.help ?? ""} (default: ${JSON.stringify(s.default)})\n`);
      process.exit(0);
    }
    if (!flag.startsWith("--")) throw new Error(`unexpected argument "${flag}"; flags look like --steps 150`);
    const name = flag.slice(2);
    const s = spec[name];
    if (!s) throw new Error(`unknown flag ${flag}; known: ${Object.keys(spec).map((k) => `--${k}`).join(" ")}`);
    if (s.type === "bool") {
      out[name] = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    if (s.type === "int") {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a non-negative integer, got "${v}"`);
      out[name] = n;
    } else if (s.type === "float") {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number, got "${v}"`);
      out[name] = n;
    } else if (s.type === "list") {
      out[name] = v.split(",").map((x) => x.trim()).filter(Boolean);
    } else {
      out[name] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// logging

let logFile = null;
const t0 = Date.now();

export function setLogFile(file) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  logFile = file;
  fs.writeFileSync(file, "");
}

export function log(msg) {
  const stamp = new Date().toISOString().slice(11, 19);
  const el = ((Date.now() - t0) / 1000).toFixed(0).padStart(5);
  const line = `[${stamp} +${el}s] ${msg}`;
  process.stderr.write(`${line}\n`);
  if (logFile) fs.appendFileSync(logFile, `${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

/** Machine-wide CPU time (ms summed over cores) from /proc/stat: busy and total. */
export function cpuStat() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const tick = 10; // USER_HZ = 100
  return { busy: (user + nice + system + irq + softirq + steal) * tick, total: (user + nice + system + idle + iowait + irq + softirq + steal) * tick };
}

/** Share of the machine's CPU used by other processes between two cpuStat() samples, given our own CPU ms. */
export function foreignLoad(s0, s1, ownMs) {
  const total = s1.total - s0.total;
  return total > 0 ? Math.max(0, Math.min(1, (s1.busy - s0.busy - ownMs) / total)) : 0;
}

/** CPU ticks used so far by every process: pid → { name, ticks }. */
function processTicks() {
  const out = new Map();
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const close = s.lastIndexOf(")");
      const name = s.slice(s.indexOf("(") + 1, close);
      const f = s.slice(close + 2).split(" ");
      out.set(pid, { name, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // the process ended between readdir and read
    }
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Busy fraction of the whole machine over `ms`, and the processes that used the most CPU meanwhile. */
export async function sampleLoad(ms = 3000) {
  const p0 = processTicks();
  const s0 = cpuStat();
  await sleep(ms);
  const s1 = cpuStat();
  const p1 = processTicks();
  const top = [];
  for (const [pid, b] of p1) {
    const a = p0.get(pid);
    const d = (b.ticks - (a?.ticks ?? b.ticks)) * 10;
    if (d > 0 && Number(pid) !== process.pid) top.push({ pid: Number(pid), name: b.name, cpuPct: (100 * d) / ms });
  }
  top.sort((x, y) => y.cpuPct - x.cpuPct);
  const total = s1.total - s0.total;
  return { busy: total > 0 ? (s1.busy - s0.busy) / total : 0, top: top.slice(0, 3) };
}

/** The parent process id from /proc/PID/stat, or null once the process is gone. */
function parentPid(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may hold spaces and parentheses: state, ppid, …
    return Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/**
 * This process and every process it descends from. A bench started as `sh -c "node bench/x.mjs …"`
 * (nohup, npm scripts, another bench) has a parent whose command line names a benchmark driver; that
 * parent is waiting on us, not about to start a timed run of its own.
 */
export function ancestorPids(pid = process.pid) {
  const out = new Set();
  for (let p = pid; p > 0 && !out.has(p); p = parentPid(p) ?? 0) out.add(p);
  return out;
}

/**
 * Other benchmark drivers alive on the machine (their children start timed runs at any moment):
 * processes whose command line runs one, other than `excluded` (by default this process and its ancestors).
 */
export function otherDrivers(excluded = ancestorPids()) {
  const out = [];
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || excluded.has(Number(pid))) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
      if (/bench\/train-step\.mjs(?! --child)/.test(cmd)) out.push({ pid: Number(pid), cmd: cmd.trim().slice(0, 60) });
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Waits until the machine is quiet (busy < `threshold` of all cores over a 3 s sample, no other
 * node/python3 using CPU), polling every `pollS` seconds for up to `maxWaitS`. Returns what it saw.
 */
export async function waitQuiet({ threshold = 0.1, pollS = 30, maxWaitS = 1200, what = "timed run", samples = 3 } = {}) {
  const started = Date.now();
  for (;;) {
    // quiet = `samples` consecutive 3 s samples under the threshold, no other node/python3 busy, and
    // no other benchmark driver alive (it would start a timed child in the middle of ours)
    let busy = 0;
    let top = [];
    let quiet = true;
    for (let i = 0; i < samples && quiet; i++) {
      ({ busy, top } = await sampleLoad(3000));
      const mine = ancestorPids();
      const heavy = top.filter((p) => /^(node|python3?|MainThread)$/.test(p.name) && p.cpuPct > 5 && !mine.has(p.pid));
      const drivers = otherDrivers(mine);
      quiet = busy < threshold && heavy.length === 0 && drivers.length === 0;
      if (drivers.length) top = [...drivers.map((d) => ({ pid: d.pid, name: d.cmd, cpuPct: 0 })), ...top];
    }
    const waited = (Date.now() - started) / 1000;
    if (quiet) {
      if (waited > 5) log(`  machine quiet after ${waited.toFixed(0)} s of waiting`);
      return { quiet: true, waitedS: waited, busy };
    }
    if (waited >= maxWaitS) {
      log(`  machine still busy after ${waited.toFixed(0)} s (${(100 * busy).toFixed(0)} % busy); running the ${what} anyway`);
      return { quiet: false, waitedS: waited, busy };
    }
    log(`  waiting for a quiet machine before the ${what}: ${(100 * busy).toFixed(0)} % busy; ${top.map((p) => `${p.name}[${p.pid}] ${p.cpuPct.toFixed(0)} %`).join(", ")}`);
    await sleep(pollS * 1000);
  }
}

// ---------------------------------------------------------------------------------------------
// child processes

/**
 * Runs a command under /usr/bin/time; returns stdout, stderr, wall/user/sys seconds, max RSS (MiB)
 * and the share of the machine's CPU that other processes used meanwhile (0…1). Child stderr lines
 * are echoed to our stderr with `echoPrefix` (null: quiet). `input`: text written to the child's
 * stdin, which is then closed (without it the child reads end of input at once).
 */
export function runTimed(cmd, args, { env, echoPrefix = "    | ", cwd = root, input } = {}) {
  return new Promise((resolve, reject) => {
    const s0 = cpuStat();
    const started = performance.now();
    const child = spawn("/usr/bin/time", ["-f", "__TIME__ %e %U %S %M", cmd, ...args], { cwd, env: env ?? process.env, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (input !== undefined) child.stdin.end(input);
    let stdout = "";
    let stderr = "";
    let pending = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (echoPrefix === null) return;
      pending += d;
      const lines = pending.split(/\r?\n|\r/);
      pending = lines.pop();
      for (const l of lines) if (l.trim() && !l.startsWith("__TIME__")) process.stderr.write(`${echoPrefix}${l}\n`);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const wallMs = performance.now() - started;
      const s1 = cpuStat();
      const m = /__TIME__ ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
      const user = m ? Number(m[2]) : NaN;
      const sys = m ? Number(m[3]) : NaN;
      const machine = s1.total - s0.total;
      const foreign = m && machine > 0 ? Math.max(0, (s1.busy - s0.busy - (user + sys) * 1000) / machine) : NaN;
      resolve({
        code,
        stdout,
        stderr: stderr.replace(/__TIME__.*\n?/, ""),
        wallS: wallMs / 1000,
        userS: user,
        sysS: sys,
        maxRssMb: m ? Number(m[4]) / 1024 : NaN,
        otherCpu: foreign,
      });
    });
  });
}

function lastJson(text) {
  const lines = text.trim().split("\n").reverse();
  for (const l of lines) {
    const t = l.trim();
    if (t.startsWith("{")) return JSON.parse(t);
  }
  return null;
}

export function cliCommand(args) {
  return `node dist/cli/main.js ${args.map(shellQuote).join(" ")}`;
}

function shellQuote(a) {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** Runs `node dist/cli/main.js ARGS --json`; returns { json, run, command }. Throws with the CLI's error line on failure. */
export async function cli(args, { label } = {}) {
  const full = [...args, "--json"];
  const command = cliCommand(full);
  log(`${label ? `${label}: ` : ""}${command}`);
  const run = await runTimed(process.execPath, [cliPath, ...full]);
  if (run.code !== 0) {
    const tail = run.stderr.trim().split("\n").slice(-5).join("\n");
    throw new Error(`slimtune exited with ${run.code}: ${command}\n${tail}`);
  }
  const json = lastJson(run.stdout);
  if (!json) throw new Error(`no JSON on stdout from ${command}`);
  log(`  done in ${run.wallS.toFixed(1)} s (max RSS ${run.maxRssMb.toFixed(0)} MiB, other processes ${(100 * run.otherCpu).toFixed(0)} % of the CPU)`);
  return { json, run, command };
}

/** One PyTorch peer run (OpenBLAS tuning variables unset, as the peer's header asks). */
export async function peer({ model = baseModel, random = false, method, bits = 4, rank = 8, batch, seq, steps = 10, warmup = 3, threads, forwardOnly = false }) {
  const args = [peerScript, "--model", model, "--method", method, "--bits", String(bits), "--rank", String(rank), "--batch", String(batch), "--seq", String(seq), "--steps", String(steps), "--warmup", String(warmup), "--threads", String(threads)];
  if (forwardOnly) args.push("--forward-only");
  if (random) args.push("--random");
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const command = `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ${python} ${args.map(shellQuote).join(" ")}`;
  log(`peer: ${command}`);
  const run = await runTimed(python, args, { env });
  if (run.code !== 0) throw new Error(`peer exited with ${run.code}: ${command}\n${run.stderr.trim().split("\n").slice(-5).join("\n")}`);
  const json = lastJson(run.stdout);
  log(`  → ${json.tokens_per_s} tok/s (median step ${json.step_ms_median} ms), peak RSS ${json.peak_rss_mb} MiB, other processes ${(100 * run.otherCpu).toFixed(0)} % of the CPU`);
  return { json, run, command };
}

// ---------------------------------------------------------------------------------------------
// results

/** Per-step training throughput from finetune's metrics.jsonl: median tokens/s of the steps after `skip`. */
export function stepThroughput(outDir, skip = 3) {
  const file = path.join(outDir, "metrics.jsonl");
  if (!fs.existsSync(file)) return null;
  const steps = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.kind === "train");
  const after = steps.slice(Math.min(skip, Math.max(0, steps.length - 1)));
  return { medianTokensPerS: median(after.map((r) => r.tokens_per_s)), steps: steps.length };
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function fileBytes(file) {
  return fs.existsSync(file) ? fs.statSync(file).size : null;
}

export function sumValues(o) {
  return Object.values(o ?? {}).reduce((a, b) => a + b, 0);
}

/** A short hash of every built .js file under dist/ (others may rebuild dist/ during a run: compare start and end). */
export function distHash() {
  const files = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".js")) files.push(p);
    }
  };
  walk(path.join(root, "dist"));
  files.sort();
  const h = createHash("sha256");
  for (const f of files) h.update(fs.readFileSync(f));
  return h.digest("hex").slice(0, 16);
}

export function machineInfo() {
  const tryRun = (cmd, args, env) => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", env: env ?? process.env, stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return null;
    }
  };
  const ort = (() => {
    try {
      return JSON.parse(fs.readFileSync(path.join(root, "node_modules/onnxruntime-node/package.json"), "utf8")).version;
    } catch {
      return null;
    }
  })();
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    onnxruntimeNode: ort,
    torch: tryRun(python, ["-c", "import torch; print(torch.__version__)"]),
    commit: tryRun("git", ["-C", root, "rev-parse", "--short", "HEAD"]),
    srcDirty: tryRun("git", ["-C", root, "status", "--porcelain", "src"])?.length > 0,
    distHash: distHash(),
    distBuilt: fs.existsSync(cliPath) ? fs.statSync(cliPath).mtime.toISOString() : null,
  };
}

/** A GitHub-flavoured markdown table. */
export function mdTable(headers, rows) {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || (typeof c === "number" && !Number.isFinite(c)) ? "–" : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(headers), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...cells.map(line)].join("\n");
}

export const fmt = {
  int: (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"),
  f: (n, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "–"),
  pct: (n, d = 1) => (Number.isFinite(n) ? `${(100 * n).toFixed(d)} %` : "–"),
  x: (n, d = 2) => (Number.isFinite(n) ? `${n.toFixed(d)}×` : "–"),
};

export function writeJson(file, value) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(value, null, 1)}\n`);
}

export function ensureBuilt() {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing; build first: npx tsc -p tsconfig.build.json`);
}

/** The fields both experiments record from a `finetune --json` run (its output folder, command, speed, memory, losses, files). */
export function trainRecord(r, out, lr) {
  const s = r.json;
  const step = stepThroughput(out, 3);
  return {
    out,
    command: r.command,
    lr,
    trainableParameters: s.trainableParameters,
    totalParameters: s.totalParameters,
    tokensSeen: s.tokensSeen,
    seconds: s.seconds,
    runTokensPerS: s.tokensPerSecond,
    stepTokensPerS: step?.medianTokensPerS ?? null,
    peakRssMb: s.peakRssMb,
    firstLoss: s.firstLoss,
    lastLoss: s.lastLoss,
    heldOutBefore: s.heldOutBefore,
    heldOutAfter: s.heldOutAfter,
    files: s.files,
  };
}
