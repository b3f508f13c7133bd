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
// Prints the mutation score per folder and writes reports/mutation/summary.json.

import { spawnSync } from "node:child_process";
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
    mutate: ["src/export/gguf/**/*.ts"],
    tests: ["test/export/gguf.test.ts", "test/export/gguf-dtypes.test.ts"],
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
    mutate: ["src/models/llama/**/*.ts"],
    tests: ["test/models/llama-reference.test.ts", "test/models/variant-reference.test.ts", "test/models/kv-graph.test.ts", "test/train/classify.test.ts", "test/train/adamw-reference.test.ts"],
  },
  "formats-quantized": {
    mutate: ["src/formats/quantized/**/*.ts"],
    tests: ["test/formats/gptq-folder.test.ts", "test/formats/nf4-folder.test.ts", "test/formats/gptq-f16.test.ts", "test/formats/mixed-precision.test.ts", "test/quant/reallm.test.ts"],
  },
  methods: {
    mutate: ["src/methods/**/*.ts"],
    tests: ["test/methods/lora.test.ts", "test/methods/peqa-adapter.test.ts", "test/methods/peqa-reference.test.ts", "test/methods/finegates.test.ts", "test/methods/reallm.test.ts", "test/methods/registry.test.ts", "test/methods/method-matrix.test.ts"],
  },
};

const STRYKER = path.join(root, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js");

const args = process.argv.slice(2);
// --only narrows one folder's mutate list to some of its files; the summary records which.
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? (args.splice(onlyAt, 2)[1] ?? "").split(",").filter(Boolean) : null;
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
  summary[name] = { mutate: f.mutate, score, counts, minutes: (Date.now() - started) / 60000, survivors };
  fs.writeFileSync(summaryFile, JSON.stringify(summary, null, 2) + "\n");
  console.log(`${name}: ${score === null ? "no mutants" : `${score.toFixed(1)} % of ${valid} mutants killed`} (${JSON.stringify(counts)}); survivors in reports/mutation/summary.json`);
}
