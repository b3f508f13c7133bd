#!/usr/bin/env node
// Mutation testing with Stryker, one source folder at a time, incrementally (results kept in
// reports/mutation/<name>.incremental.json, so a re-run only tests mutants of changed code).
// Each folder runs only the test files that cover it. Not part of `npm test`: a full run takes hours
// on 2 cores. Usage:
//   node bench/mutation.mjs                 # every folder, smallest first
//   node bench/mutation.mjs quant-kinds     # one or more folders by name
//   node bench/mutation.mjs --list          # the folders and their test files
//   node bench/mutation.mjs engine-ops --only src/engine/ops/matmul.ts,src/engine/ops/nn.ts
//                                           # part of one folder (when there is no time for all)
//   node bench/mutation.mjs methods --count # mutants per file (Stryker's instrumenter; no tests run)
//   node bench/mutation.mjs methods --sample 220
//                                           # an unbiased part: whole files in sha256(path) order,
//                                           # each taken if the total stays within 220 mutants
// Prints the mutation score per folder and writes reports/mutation/summary.json.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

/** Folder name → what to mutate and which tests cover it. */
const FOLDERS = {
  "engine-autodiff": {
    mutate: ["src/engine/autodiff.ts"],
    tests: ["test/engine/autodiff.test.ts", "test/engine/ops-grad.test.ts", "test/train/checkpoint-activations.test.ts", "test/models/variant-reference.test.ts"],
  },
  "quant-gptq": {
    mutate: ["src/quant/gptq.ts"],
    tests: ["test/quant/gptq.test.ts", "test/quant/gptq-checks.test.ts"],
  },
  "export-gguf": {
    // llama-mix.ts (the presets' per-tensor types) is pure: gguf-mutants.test.ts checks it on a
    // 16-layer model in milliseconds. model.ts, native.ts and lora.ts are reached only through whole
    // exports that llama.cpp reads back (gguf.test.ts, gguf-dtypes, -presets, -own-bits, -k-quants,
    // -layer-bits: 13–30 s each, 150 s in all); a run of those files must add them (hours).
    mutate: ["src/export/gguf/**/*.ts"],
    tests: ["test/export/gguf-mutants.test.ts"],
  },
  "quant-kinds": {
    // storage.ts is an interface only. Whole-model quantization is out: instrumented, the RTN and
    // NF4 inner loops run ~100× slower, so quantize-model.test.ts (1.3 s per test) times out at
    // 120 s in the dry run, and so would the folder round trips (formats/*-folder.test.ts).
    // kinds-mutants.test.ts checks what only they reached (storage, dispatch) on hand-sized layers.
    // pack.test.ts tests quant/pack.ts, not the kinds.
    mutate: ["src/quant/kinds/**/*.ts", "!src/quant/kinds/storage.ts"],
    tests: ["test/quant/rtn.test.ts", "test/quant/nf4.test.ts", "test/quant/kinds-mutants.test.ts", "test/quant/reallm.test.ts"],
  },
  "engine-ops": {
    // Every op is reached by every model test; the engine's own tests are the fast, exact ones:
    // op gradients against finite differences, symbolic dims, autodiff, and the static-graph hashes
    // (any change to a built graph fails them). The PyTorch references (llama-, variant-reference,
    // 10 s) run the same ops through whole models and would only add time to each mutant.
    mutate: ["src/engine/ops/**/*.ts"],
    tests: ["test/engine/ops-grad.test.ts", "test/engine/ops-mutants.test.ts", "test/engine/dims.test.ts", "test/engine/autodiff.test.ts", "test/engine/static-graphs.test.ts"],
  },
  "models-llama": {
    // llama-mutants.test.ts: six block graphs chained against PyTorch's logits, Gram and block-loss
    // outputs worked on the host, packed rows against separate rows, Gemma's GeGLU and (1 + w) norm
    // (3 s). gemma3.test.ts (12 s) is the only check of a whole Gemma 3 layer (against llama.cpp and
    // transformers.js). Out: classify.test.ts (a 32 s fine-tune) and adamw-reference.test.ts (11 s),
    // which add nothing the PyTorch references here do not check of the graph.
    mutate: ["src/models/llama/**/*.ts"],
    tests: ["test/models/llama-mutants.test.ts", "test/models/llama-reference.test.ts", "test/models/variant-reference.test.ts", "test/models/kv-graph.test.ts", "test/engine/static-graphs.test.ts", "test/methods/reallm.test.ts", "test/families/gemma3.test.ts"],
  },
  "formats-quantized": {
    // quantized-mutants.test.ts: the `dynamic` overrides and the quant_method dispatch by hand;
    // nf4-folder, gptq-v2-folder and ReALLM's folder round trips (0.7–2 s each). gptq-folder.test.ts
    // (8 s, 39 tests) and mixed-precision.test.ts (16 s) are what reach gptq-folder.ts and most of
    // common.ts: a run of those files must add them (every static mutant then costs ~25 s).
    mutate: ["src/formats/quantized/**/*.ts"],
    tests: ["test/formats/quantized-mutants.test.ts", "test/formats/nf4-folder.test.ts", "test/formats/gptq-v2-folder.test.ts", "test/quant/reallm.test.ts"],
  },
  methods: {
    // Each method's definition is a module-level object, so its mutants are "static" and run every
    // listed test: the list must stay fast. methods-mutants.test.ts checks merge, QLoRA's base and
    // the qlora/lqlora/full/reallm definitions by hand; reallm.test.ts and peqa-reference.test.ts
    // run in under a second. lora.test.ts (7.5 s), finegates.test.ts (5 s), peqa-adapter.test.ts
    // (6.8 s) and method-matrix.test.ts (29 s) are what reach lora/index.ts, finegates/ and peqa/:
    // a run of those files must add them. registry.test.ts runs the CLI from dist/, which a Stryker
    // sandbox does not have.
    mutate: ["src/methods/**/*.ts"],
    tests: ["test/methods/methods-mutants.test.ts", "test/methods/reallm.test.ts", "test/methods/peqa-reference.test.ts"],
  },
};

const STRYKER = path.join(root, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js");

const args = process.argv.slice(2);
// --only narrows one folder's mutate list to some of its files; the summary records which.
const onlyAt = args.indexOf("--only");
let only = onlyAt >= 0 ? (args.splice(onlyAt, 2)[1] ?? "").split(",").filter(Boolean) : null;
const sampleAt = args.indexOf("--sample");
const sample = sampleAt >= 0 ? Number(args.splice(sampleAt, 2)[1]) : null;
const countOnly = args.includes("--count");
if (countOnly) args.splice(args.indexOf("--count"), 1);
if (args.includes("--list")) {
  for (const [name, f] of Object.entries(FOLDERS)) console.log(`${name}: ${f.mutate.join(" ")}\n  ${f.tests.join("\n  ")}`);
  process.exit(0);
}
const unknown = args.filter((a) => !FOLDERS[a]);
if (unknown.length) {
  console.error(`unknown folder ${unknown.join(", ")}; choose from ${Object.keys(FOLDERS).join(", ")}`);
  process.exit(2);
}
const names = args.length ? args : Object.keys(FOLDERS);
if (only && (names.length !== 1 || only.length === 0)) {
  console.error("--only needs one folder and a comma-separated list of its files");
  process.exit(2);
}
if (sample !== null && (names.length !== 1 || only || !(sample > 0))) {
  console.error("--sample needs one folder, a positive mutant budget, and no --only");
  process.exit(2);
}

/** The files a folder's mutate globs name ("dir/**\/*.ts", plain paths, "!path" exclusions). */
function filesOf(globs) {
  const out = new Set();
  for (const g of globs.filter((x) => !x.startsWith("!"))) {
    if (!g.includes("*")) out.add(g);
    else for (const f of fs.readdirSync(g.slice(0, g.indexOf("*")), { recursive: true })) if (String(f).endsWith(".ts")) out.add(path.join(g.slice(0, g.indexOf("*")), String(f)));
  }
  for (const g of globs.filter((x) => x.startsWith("!"))) out.delete(g.slice(1));
  return [...out].sort();
}

/** Mutants per file, as Stryker's instrumenter generates them (before the type checker drops some). */
async function countMutants(files) {
  const { Instrumenter } = await import("@stryker-mutator/instrumenter");
  const quiet = { isTraceEnabled: () => false, isDebugEnabled: () => false, trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} };
  const input = files.map((name) => ({ name, content: fs.readFileSync(name, "utf8"), mutate: true }));
  const { mutants } = await new Instrumenter(quiet).instrument(input, { plugins: null, excludedMutations: [], ignorers: [] });
  const per = Object.fromEntries(files.map((f) => [f, 0]));
  for (const m of mutants) per[m.fileName] += 1;
  return per;
}

if (sample !== null) {
  // Which files are tested must not depend on how well they are tested: the order is a hash of the
  // path, fixed before any run; a file is skipped only when it would overflow the budget.
  const per = await countMutants(filesOf(FOLDERS[names[0]].mutate));
  const hash = (f) => createHash("sha256").update(f).digest("hex");
  let total = 0;
  only = [];
  for (const f of Object.keys(per).sort((a, b) => (hash(a) < hash(b) ? -1 : 1))) {
    if (total + per[f] > sample) continue;
    total += per[f];
    only.push(f);
  }
  console.log(`sample within ${sample} mutants: ${total} in ${only.join(", ")}`);
}
if (countOnly) {
  // With --sample, the part it would run was printed above.
  for (const name of names) {
    const per = await countMutants(filesOf(FOLDERS[name].mutate));
    console.log(`${name}: ${Object.values(per).reduce((a, b) => a + b, 0)} mutants`);
    for (const [f, n] of Object.entries(per)) console.log(`  ${String(n).padStart(4)} ${f}`);
  }
  process.exit(0);
}

// Tests reach the fixtures as ../shared from the checkout; a sandbox is .stryker-tmp/sandbox-*, so
// the link goes beside the sandboxes.
const tmp = path.join(root, ".stryker-tmp");
fs.mkdirSync(tmp, { recursive: true });
const link = path.join(tmp, "shared");
if (!fs.existsSync(link)) fs.symlinkSync(path.resolve(root, "..", "shared"), link);

const summaryFile = path.join(root, "reports", "mutation", "summary.json");
fs.mkdirSync(path.dirname(summaryFile), { recursive: true });
const summary = fs.existsSync(summaryFile) ? JSON.parse(fs.readFileSync(summaryFile, "utf8")) : {};

for (const name of names) {
  const f = only ? { ...FOLDERS[name], mutate: only } : FOLDERS[name];
  console.log(`\n== ${name}: ${f.mutate.join(", ")} (${f.tests.length} test files)`);
  const started = Date.now();
  const r = spawnSync(process.execPath, [STRYKER, "run", "stryker.config.mjs"], {
    stdio: "inherit",
    env: { ...process.env, MUTATION_NAME: name, MUTATION_MUTATE: f.mutate.join(","), MUTATION_TESTS: f.tests.join(",") },
  });
  for (const d of fs.readdirSync(tmp)) if (d.startsWith("sandbox-")) fs.rmSync(path.join(tmp, d), { recursive: true, force: true });
  const report = path.join(root, "reports", "mutation", `${name}.json`);
  if (r.status !== 0 || !fs.existsSync(report)) {
    console.error(`${name}: stryker exited with ${r.status}`);
    continue;
  }
  const counts = {};
  const survivors = [];
  for (const [file, { mutants }] of Object.entries(JSON.parse(fs.readFileSync(report, "utf8")).files)) {
    for (const m of mutants) {
      counts[m.status] = (counts[m.status] ?? 0) + 1;
      if (m.status === "Survived" || m.status === "NoCoverage") survivors.push({ file, line: m.location.start.line, mutator: m.mutatorName, replacement: m.replacement, status: m.status });
    }
  }
  const detected = (counts.Killed ?? 0) + (counts.Timeout ?? 0);
  const valid = detected + (counts.Survived ?? 0) + (counts.NoCoverage ?? 0);
  const score = valid ? (100 * detected) / valid : null;
  // A partial run gets its own entry, so it never overwrites the folder's (or another part's) record.
  const key = only ? `${name} (${only.map((p) => path.relative(FOLDERS[name].mutate[0].split("*")[0], p) || p).join(", ")})` : name;
  summary[key] = { mutate: f.mutate, ...(sample !== null ? { sample: `whole files in sha256(path) order within ${sample} mutants` } : {}), score, counts, minutes: (Date.now() - started) / 60000, finished: new Date().toISOString(), survivors };
  fs.writeFileSync(summaryFile, JSON.stringify(summary, null, 2) + "\n");
  console.log(`${key}: ${score === null ? "no mutants" : `${score.toFixed(1)} % of ${valid} mutants killed`} (${JSON.stringify(counts)}); survivors in reports/mutation/summary.json`);
}
