#!/usr/bin/env node
// Fuzzes every reader of slimtune's built dist/ with mutated valid files (bench/fuzz/readers.mjs)
// and counts the outcomes per reader: a typed error (by code), accepted (a valid load), or
// anything else — an untyped error, a crash of the process, a case over the time bound, or one
// over the memory bound. Each reader runs in a child process; every case has its own timer and the
// child's resident memory is polled, so a hang or a runaway allocation is killed, counted and the
// run continues at the next case. Inputs of "anything else" are copied to --examples.
//
//   npx tsc -p tsconfig.build.json && node bench/fuzz-readers.mjs [--cases 10000] [--readers gguf,tsv]
//     [--seed 1] [--timeout-s 10] [--memory-mb 2048] [--examples DIR] [--dist DIR] [--json FILE]

import { fork } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readerNames } from "./fuzz/readers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const { values: args } = parseArgs({
  options: {
    cases: { type: "string", default: "10000" },
    readers: { type: "string", default: readerNames.join(",") },
    seed: { type: "string", default: "1" },
    "timeout-s": { type: "string", default: "10" },
    "memory-mb": { type: "string", default: "2048" },
    examples: { type: "string", default: path.join(os.tmpdir(), "slimtune-fuzz-examples") },
    dist: { type: "string", default: path.join(repo, "dist") },
    shared: { type: "string", default: path.resolve(repo, "../shared") },
    json: { type: "string" },
  },
});
const cases = Number(args.cases);
const timeoutMs = Number(args["timeout-s"]) * 1000;
const memoryBytes = Number(args["memory-mb"]) * 2 ** 20;
const readers = args.readers.split(",").filter(Boolean);
for (const r of readers) if (!readerNames.includes(r)) throw new Error(`unknown reader "${r}"; readers: ${readerNames.join(", ")}`);
if (!fs.existsSync(path.join(args.dist, "index.js"))) throw new Error(`${args.dist} has no build; run npx tsc -p tsconfig.build.json first`);
fs.mkdirSync(args.examples, { recursive: true });

/** Resident memory of a process in bytes (Linux), or 0 when it cannot be read. */
function rss(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs all cases of one reader, restarting its worker after every kill or crash. */
async function fuzzOne(name) {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `slimtune-fuzz-${name}-`));
  const counts = new Map();
  const others = [];
  const count = (k) => counts.set(k, (counts.get(k) ?? 0) + 1);
  const saveCase = (i, why) => {
    const keep = path.join(args.examples, `${name}-${i}-${why}`);
    const caseDir = path.join(workDir, `${name}-case`);
    if (fs.existsSync(caseDir)) fs.cpSync(caseDir, keep, { recursive: true });
    else fs.mkdirSync(keep, { recursive: true });
    const mutation = path.join(workDir, `${name}-mutation.json`);
    if (fs.existsSync(mutation)) fs.copyFileSync(mutation, path.join(keep, "mutation.json"));
    return keep;
  };
  let next = 0;
  let slowest = 0;
  const started = performance.now();
  while (next < cases) {
    next = await new Promise((resolve, reject) => {
      // The worker's heap stays under the bound too; typed arrays live outside it, hence the RSS poll.
      const child = fork(path.join(here, "fuzz/worker.mjs"), [], { execArgv: [`--max-old-space-size=${Math.round(memoryBytes / 2 ** 20)}`], stdio: ["ignore", "ignore", "pipe", "ipc"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-2000)));
      let current = -1;
      let killedFor = null;
      let timer = null;
      const kill = (why) => {
        if (killedFor) return;
        killedFor = why;
        child.kill("SIGKILL");
      };
      const poll = setInterval(() => {
        if (current >= 0 && rss(child.pid) > memoryBytes) kill("memory");
      }, 100);
      child.on("message", (msg) => {
        if (msg.type === "start") {
          current = msg.i;
          timer = setTimeout(() => kill("timeout"), timeoutMs);
        } else if (msg.type === "done") {
          clearTimeout(timer);
          slowest = Math.max(slowest, msg.ms);
          count(msg.outcome);
          if (msg.outcome === "untyped") others.push({ i: msg.i, why: "untyped", detail: msg.error, dir: path.join(args.examples, `${name}-${msg.i}-untyped`) });
          current = -1;
          if ((msg.i + 1) % 1000 === 0) process.stderr.write(`${name}: ${msg.i + 1}/${cases} cases, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
        }
      });
      child.on("exit", (code, signal) => {
        clearInterval(poll);
        clearTimeout(timer);
        if (current < 0) {
          if (code !== 0) reject(new Error(`${name}: the worker failed outside a case (exit ${code ?? signal}): ${stderr}`));
          else resolve(cases);
          return;
        }
        const why = killedFor ?? "crash";
        count(why);
        const detail = killedFor === "timeout" ? `over ${timeoutMs / 1000} s` : killedFor === "memory" ? `over ${memoryBytes / 2 ** 20} MB resident` : `exit ${code ?? signal}: ${stderr.trim().split("\n").slice(-3).join(" | ")}`;
        others.push({ i: current, why, detail, dir: saveCase(current, why) });
        resolve(current + 1);
      });
      child.send({ reader: name, cases, seed: Number(args.seed), from: next, workDir, dist: path.resolve(args.dist), shared: args.shared, examples: args.examples });
    });
  }
  fs.rmSync(workDir, { recursive: true, force: true });
  return { reader: name, cases, seconds: (performance.now() - started) / 1000, slowestMs: slowest, counts: Object.fromEntries(counts), others };
}

const results = [];
for (const name of readers) {
  const r = await fuzzOne(name);
  results.push(r);
  process.stderr.write(`${name}: done in ${r.seconds.toFixed(0)} s\n`);
}

const typedOf = (c) => Object.entries(c).filter(([k]) => k.startsWith("E_")).sort(([, a], [, b]) => b - a);
const otherKinds = ["untyped", "crash", "timeout", "memory"];
console.log(`\nReader fuzzing: ${cases} cases per reader, seed ${args.seed}, bounds ${timeoutMs / 1000} s and ${memoryBytes / 2 ** 20} MB per case (${new Date().toISOString().slice(0, 16)}Z)\n`);
console.log("| reader | typed error (by code) | accepted | anything else | slowest case | seconds |");
console.log("|---|---|---:|---:|---:|---:|");
for (const r of results) {
  const typed = typedOf(r.counts).map(([k, v]) => `${k} ${v}`).join(", ");
  const other = otherKinds.filter((k) => r.counts[k]).map((k) => `${k} ${r.counts[k]}`).join(", ") || "0";
  console.log(`| ${r.reader} | ${typed} | ${r.counts.accepted ?? 0} | ${other} | ${(r.slowestMs / 1000).toFixed(2)} s | ${r.seconds.toFixed(0)} |`);
}
const all = results.flatMap((r) => r.others.map((o) => ({ reader: r.reader, ...o })));
if (all.length > 0) {
  console.log(`\nAnything else (inputs in ${args.examples}):`);
  for (const o of all.slice(0, 40)) console.log(`- ${o.reader} case ${o.i}: ${o.why} — ${o.detail} (${o.dir})`);
}
if (args.json) fs.writeFileSync(args.json, `${JSON.stringify({ cases, seed: Number(args.seed), timeoutS: timeoutMs / 1000, memoryMb: memoryBytes / 2 ** 20, results }, null, 1)}\n`);
