// Issue 17: does each compression deploy at its own size? For each source folder: bytes of the GGUF
// file and of the transformers.js folder that `export` writes by default (no --dtype: the model's own
// bits) against the folder's, and KL to the float model measured inside llama.cpp (the GGUF against
// the float F32 GGUF, bench/lib/llama-kl.mjs) against slimtune's KL of the source folder (eval
// --reference) on the same tokens and windows. Rows with a --dtype show what a re-rounding costs.
//
//   npm run build && node bench/deploy.mjs [--tokens 2048] [--out bench/results/deploy.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { baseModel, cli, ensureBuilt, fileBytes, log, machineInfo, mdTable, parseFlags, root, runTimed, setLogFile, wikiTest, wikiValid, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    tokens: { type: "int", default: 2048, help: "WikiText-2 test tokens for both KLs" },
    out: { type: "string", default: path.join(root, "bench/results/deploy.json"), help: "results JSON" },
  },
  "node bench/deploy.mjs — export at the model's own bits: sizes and KL in llama.cpp vs slimtune",
);

const ROWS = [
  { name: "RTN-4 g32 symmetric", quantize: ["--bits", "4", "--group-size", "32", "--sym"] },
  { name: "RTN-4 g32 asymmetric", quantize: ["--bits", "4", "--group-size", "32"] },
  { name: "GPTQ-4 g32 asymmetric", quantize: ["--method", "gptq", "--bits", "4", "--group-size", "32", "--calib", wikiValid] },
  { name: "GPTQ-3 g64 act-order", quantize: ["--method", "gptq", "--bits", "3", "--group-size", "64", "--act-order", "--calib", wikiValid], dtype: "q4_1" },
];

ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-deploy-"));
const folderBytes = (dir) => fs.readdirSync(dir, { recursive: true }).map((f) => path.join(dir, String(f))).filter((f) => fs.statSync(f).isFile() && !f.endsWith(".slimtune-output")).reduce((a, f) => a + fileBytes(f), 0);
const llamaKl = async (ref, file) => {
  const run = await runTimed(process.execPath, [path.join(root, "bench/lib/llama-kl.mjs"), ref, file, "--tokens", String(flags.tokens), "--ctx", "256"], { echoPrefix: null });
  if (run.code !== 0) throw new Error(`llama-kl failed: ${run.stderr.slice(-500)}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1));
};

const f32 = path.join(work, "float-f32.gguf");
await cli(["export", "--format", "gguf", "--model", baseModel, "--dtype", "f32", "--out", f32], { label: "float reference GGUF" });
const results = { machine: machineInfo(), flags, rows: [] };
for (const row of ROWS) {
  const dir = path.join(work, row.name.replace(/\W+/g, "-"));
  await cli(["quantize", "--model", baseModel, ...row.quantize, "--out", dir], { label: `${row.name}: quantize` });
  const ours = await cli(["eval", "--model", dir, "--reference", baseModel, "--data", wikiTest, "--max-tokens", String(flags.tokens), "--ctx", "256"], { label: `${row.name}: slimtune KL` });
  const gguf = path.join(dir + ".gguf");
  const exp = await cli(["export", "--format", "gguf", "--model", dir, ...(row.dtype ? ["--dtype", row.dtype, "--data", wikiTest] : []), "--out", gguf], { label: `${row.name}: export gguf` });
  const theirs = await llamaKl(f32, gguf);
  const web = path.join(dir + "-web");
  let onnxBytes = null;
  try {
    await cli(["export", "--format", "onnx", "--model", dir, "--out", web], { label: `${row.name}: export onnx` });
    onnxBytes = folderBytes(web);
  } catch (e) {
    log(`  onnx: ${String(e.message).split("\n").at(-1)}`);
  }
  const r = {
    name: row.name,
    dtype: row.dtype ?? "own",
    source_bytes: folderBytes(dir),
    gguf_bytes: fileBytes(gguf),
    gguf_types: exp.json.types,
    onnx_bytes: onnxBytes,
    slimtune_kl: ours.json.meanKl,
    slimtune_top1: ours.json.top1Agreement,
    llama_cpp_kl: theirs.kl,
    llama_cpp_top1: theirs.top1,
    positions: theirs.positions,
    export_changes: exp.json.changes,
    export_total_kl: exp.json.total_kl ?? null,
  };
  log(`${row.name}: folder ${r.source_bytes} B, GGUF ${r.gguf_bytes} B (${(r.gguf_bytes / r.source_bytes).toFixed(3)}×), KL slimtune ${r.slimtune_kl.toExponential(3)} / llama.cpp ${r.llama_cpp_kl.toExponential(3)} (${(r.llama_cpp_kl / r.slimtune_kl).toFixed(3)}×)`);
  results.rows.push(r);
  writeJson(flags.out, results);
}
console.log(
  mdTable(
    ["source", "export", "folder bytes", "GGUF bytes (×)", "ONNX folder bytes (×)", "KL slimtune", "KL llama.cpp (×)", "top-1 slimtune / llama.cpp"],
    results.rows.map((r) => [
      r.name,
      r.dtype === "own" ? `own bits (${Object.entries(r.gguf_types).map(([t, n]) => `${n} ${t}`).join(", ")})` : `--dtype ${r.dtype}`,
      r.source_bytes,
      `${r.gguf_bytes} (${(r.gguf_bytes / r.source_bytes).toFixed(3)})`,
      r.onnx_bytes === null ? "refused (E_ARG)" : `${r.onnx_bytes} (${(r.onnx_bytes / r.source_bytes).toFixed(3)})`,
      r.slimtune_kl.toExponential(3),
      `${r.llama_cpp_kl.toExponential(3)} (${(r.llama_cpp_kl / r.slimtune_kl).toFixed(3)})`,
      `${(100 * r.slimtune_top1).toFixed(1)} % / ${(100 * r.llama_cpp_top1).toFixed(1)} %`,
    ]),
  ),
);
