// Issue 17 items 2–3: GGUF k-quants and llama.cpp's presets written by slimtune, and GPTQ calibrated
// onto the k-quant grid. For ref-llama-5m: each type and preset (ggml's reference quantizer, the
// file llama-quantize writes without an importance matrix — byte-identical, see
// test/export/gguf-presets.test.ts) and GPTQ → Q4_K / Q3_K (quantize --method gptq --target):
// file bytes and KL to the float model measured inside llama.cpp (bench/lib/llama-kl.mjs: the file
// against the F32 GGUF on WikiText-2 test windows).
//
//   npm run build && node bench/k-quants.mjs [--tokens 2048] [--calib-samples 128] [--out bench/results/k-quants.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { baseModel, cli, ensureBuilt, fileBytes, log, machineInfo, mdTable, parseFlags, root, runTimed, setLogFile, wikiValid, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    tokens: { type: "int", default: 2048, help: "WikiText-2 test tokens for the KL" },
    "calib-samples": { type: "int", default: 128, help: "GPTQ calibration windows of 256 tokens (WikiText-2 valid)" },
    dtypes: { type: "string", default: "q8_0,q6_k,q5_k_m,q5_k,q5_1,q5_0,q4_k_m,q4_k,q4_1,q4_0,q3_k_m,q3_k,q2_k", help: "export --dtype rows, comma-separated (each GPTQ target's reference must be among them)" },
    targets: { type: "string", default: "q4_k,q3_k,q4_k_m,q3_k_m", help: "GPTQ targets, comma-separated" },
    out: { type: "string", default: path.join(root, "bench/results/k-quants.json"), help: "results JSON" },
  },
  "node bench/k-quants.mjs — GGUF k-quants and presets in llama.cpp; GPTQ onto the k-quant grid",
);


ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-k-quants-"));
const llamaKl = async (ref, file) => {
  const run = await runTimed(process.execPath, [path.join(root, "bench/lib/llama-kl.mjs"), ref, file, "--tokens", String(flags.tokens), "--ctx", "256"], { echoPrefix: null });
  if (run.code !== 0) throw new Error(`llama-kl failed: ${run.stderr.slice(-500)}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1));
};
const typesOf = (json) => Object.entries(json.types).map(([t, n]) => `${n} ${t}`).join(", ");

const f32 = path.join(work, "float-f32.gguf");
await cli(["export", "--format", "gguf", "--model", baseModel, "--dtype", "f32", "--out", f32], { label: "float reference GGUF" });
const results = { machine: machineInfo(), flags, f32_bytes: fileBytes(f32), rows: [], gptq: [] };
for (const dtype of flags.dtypes.split(",")) {
  const file = path.join(work, `ref-${dtype}.gguf`);
  const exp = await cli(["export", "--format", "gguf", "--model", baseModel, "--dtype", dtype, "--out", file], { label: `export --dtype ${dtype}` });
  const kl = await llamaKl(f32, file);
  const row = { dtype, bytes: fileBytes(file), types: typesOf(exp.json), llama_cpp_kl: kl.kl, llama_cpp_top1: kl.top1 };
  results.rows.push(row);
  log(`${dtype}: ${row.bytes} B (${row.types}), KL in llama.cpp ${row.llama_cpp_kl.toExponential(3)}, top-1 ${(100 * row.llama_cpp_top1).toFixed(1)} %`);
}
for (const target of flags.targets.split(",")) {
  const file = path.join(work, `gptq-${target}.gguf`);
  const q = await cli(["quantize", "--model", baseModel, "--method", "gptq", "--target", target, "--calib", wikiValid, "--calib-samples", String(flags["calib-samples"]), "--out", file], { label: `GPTQ → ${target}` });
  const kl = await llamaKl(f32, file);
  const reference = results.rows.find((r) => r.dtype === target);
  const row = { target, bytes: fileBytes(file), types: typesOf(q.json), llama_cpp_kl: kl.kl, llama_cpp_top1: kl.top1, reference_kl: reference.llama_cpp_kl, reference_bytes: reference.bytes };
  results.gptq.push(row);
  log(`GPTQ → ${target}: ${row.bytes} B (${row.types}), KL in llama.cpp ${row.llama_cpp_kl.toExponential(3)} vs ggml's reference ${row.reference_kl.toExponential(3)} (${(row.llama_cpp_kl / row.reference_kl).toFixed(3)}×)`);
}
writeJson(flags.out, results);
log(`\n${mdTable(["--dtype", "GGUF bytes", "tensor types", "KL to float in llama.cpp", "top-1 agreement"], results.rows.map((r) => [r.dtype, String(r.bytes), r.types, r.llama_cpp_kl.toExponential(3), `${(100 * r.llama_cpp_top1).toFixed(1)} %`]))}`);
log(`\n${mdTable(["GPTQ target", "GGUF bytes", "KL in llama.cpp: GPTQ", "ggml's reference (same types)", "ratio"], results.gptq.map((r) => [r.target, String(r.bytes), r.llama_cpp_kl.toExponential(3), r.reference_kl.toExponential(3), `${(r.llama_cpp_kl / r.reference_kl).toFixed(3)}×`]))}`);
