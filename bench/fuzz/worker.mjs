// One reader's fuzz cases in a child process of bench/fuzz-readers.mjs, which times every case and
// watches this process's memory. Cases are regenerated from the seed, so after a kill the parent
// restarts the worker at the next case. Messages: {type: "start", i}, {type: "done", i, outcome,
// ms, error?}, {type: "end"}.

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { prepareReader } from "./readers.mjs";

/** The modules readers.mjs needs, from a built dist/ folder. */
const MODULES = [
  "arch/llama/shapes.js",
  "core/errors.js",
  "data/text-file.js",
  "data/tsv.js",
  "formats/checkpoint.js",
  "formats/classifier-head.js",
  "formats/finegates-run.js",
  "formats/gguf/ggml-types.js",
  "formats/gguf/llama.js",
  "formats/gguf/reader.js",
  "formats/gguf/tokenizer.js",
  "formats/gguf/writer.js",
  "formats/hf-config.js",
  "formats/hf-folder.js",
  "formats/peft.js",
  "formats/peqa-adapter.js",
  "formats/quantized/index.js",
  "formats/safetensors.js",
  "formats/tokenizer.js",
  "quant/linalg/host-gemm.js",
  "quant/linalg/kmeans.js",
  "quant/quantize-model.js",
  "quant/reallm.js",
  "quant/scales.js",
  "quant/types.js",
];

async function distLib(dist, shared) {
  const lib = { refModelDir: path.join(shared, "models/ref-llama-5m"), sharedDir: shared };
  for (const m of MODULES) Object.assign(lib, await import(pathToFileURL(path.join(dist, m)).href));
  return lib;
}

function describeMutation(m) {
  return JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? { bytes: Array.from(v.subarray(0, 256)), length: v.length } : typeof v === "bigint" ? `${v}n` : typeof v === "string" && v.length > 200 ? `${v.slice(0, 200)}… (${v.length} chars)` : v), 1);
}

process.on("message", async (job) => {
  const { reader: name, cases, seed, from, workDir, dist, shared, examples } = job;
  const lib = await distLib(dist, shared);
  const reader = await prepareReader(lib, fc, name, workDir);
  const mutations = fc.sample(reader.arbitrary, { seed, numRuns: cases });
  const caseDir = path.join(workDir, `${name}-case`);
  for (let i = from; i < cases; i++) {
    // Written before the case runs, so the parent can save it after a timeout or crash.
    fs.writeFileSync(path.join(workDir, `${name}-mutation.json`), describeMutation(mutations[i]));
    process.send({ type: "start", i });
    const t0 = performance.now();
    let outcome;
    let error;
    try {
      outcome = await reader.run(mutations[i], caseDir);
    } catch (err) {
      outcome = "untyped";
      error = `${err?.name ?? typeof err}: ${String(err?.message ?? err).slice(0, 300)}`;
      const keep = path.join(examples, `${name}-${i}-untyped`);
      fs.cpSync(caseDir, keep, { recursive: true });
      fs.copyFileSync(path.join(workDir, `${name}-mutation.json`), path.join(keep, "mutation.json"));
      fs.writeFileSync(path.join(keep, "error.txt"), `${error}\n${err?.stack ?? ""}\n`);
    }
    await new Promise((resolve) => process.send({ type: "done", i, outcome, ms: performance.now() - t0, error }, resolve));
  }
  process.send({ type: "end" }, () => process.exit(0));
});
