// Issue 17, "Measure": does each compression deploy at its own size? For every source row of the
// issue (RTN-4 g32 and g128, GPTQ-3 g64 act-order, GPTQ-2 g32, a mixed 3-bit-average allocation,
// PEQA-3 tuned, a 20 % pruned 4-bit model, ReALLM-3): the source folder's bytes (plus its adapter's),
// the GGUF file and the transformers.js folder that `export` writes by default (the model's own
// bits), and KL to the float model measured inside llama.cpp (node-llama-cpp, bench/lib/llama-kl.mjs:
// against the float F32 GGUF) and inside transformers.js (bench/lib/onnx-kl.mjs: against the float
// fp32 ONNX folder), next to slimtune's KL of the source folder (eval --reference) on the same
// tokens and windows.
//
// Where the default export refuses (no type of that runtime holds the layers' bits), the row prints
// "refused: <message>" and the bench tries the nearest --dtype of a preference list by the source's
// bits, recording which one was used. A --dtype the command does not know yet ("is not one of") is
// skipped, so the k-quant and 2/8-bit ONNX dtypes count as soon as export accepts them, and rows
// whose default refuses today are measured at their own bits once it stops refusing — no edit here.
//
//   npx tsc -p tsconfig.build.json && node bench/deploy.mjs [--tokens 2048] [--rows rtn4-g32,reallm3] [--out bench/results/deploy.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { baseModel, cli, ensureBuilt, fileBytes, log, machineInfo, mdTable, parseFlags, root, runTimed, setLogFile, wikiTest, wikiValid, writeJson } from "./lib/harness.mjs";

const ROWS = [
  { key: "rtn4-g32", name: "RTN-4 g32", bits: 4, make: (dir) => [["quantize", "--model", baseModel, "--bits", "4", "--group-size", "32", "--out", dir]] },
  { key: "rtn4-g32-sym", name: "RTN-4 g32 symmetric", bits: 4, make: (dir) => [["quantize", "--model", baseModel, "--bits", "4", "--group-size", "32", "--sym", "--out", dir]] },
  { key: "rtn4-g128", name: "RTN-4 g128", bits: 4, make: (dir) => [["quantize", "--model", baseModel, "--bits", "4", "--group-size", "128", "--out", dir]] },
  { key: "gptq3-g64-act", name: "GPTQ-3 g64 act-order", bits: 3, make: (dir) => [["quantize", "--model", baseModel, "--method", "gptq", "--bits", "3", "--group-size", "64", "--act-order", "--calib", wikiValid, "--out", dir]] },
  { key: "gptq2-g32", name: "GPTQ-2 g32", bits: 2, make: (dir) => [["quantize", "--model", baseModel, "--method", "gptq", "--bits", "2", "--group-size", "32", "--calib", wikiValid, "--out", dir]] },
  // --avg-bits 3 is the --budget-mb whose codes average 3 bits per weight (per-layer bits from 2/3/4/8 by importance).
  { key: "mixed3", name: "mixed precision, 3 bits/weight average", bits: 3, make: (dir) => [["quantize", "--model", baseModel, "--avg-bits", "3", "--allocation", "importance", "--data", wikiValid, "--out", dir]] },
  {
    key: "peqa3",
    name: "PEQA-3 tuned (RTN-3 g64 + scales)",
    bits: 3,
    adapter: (dir) => `${dir}-peqa`,
    make: (dir, f) => [
      ["quantize", "--model", baseModel, "--bits", "3", "--group-size", "64", "--out", dir],
      ["finetune", "--method", "peqa", "--model", dir, "--data", wikiValid, "--steps", String(f.peqaSteps), "--batch", "4", "--seq", "128", "--out", `${dir}-peqa`],
    ],
  },
  {
    key: "pruned20-rtn4",
    name: "pruned 20 % + RTN-4 g32",
    bits: 4,
    make: (dir) => [
      ["prune", "--model", baseModel, "--data", wikiValid, "--ratio", "0.2", "--out", `${dir}-float`],
      ["quantize", "--model", `${dir}-float`, "--bits", "4", "--group-size", "32", "--out", dir],
    ],
  },
  { key: "reallm3", name: "ReALLM-3", bits: 3, make: (dir) => [["quantize", "--model", baseModel, "--method", "reallm", "--bits-per-weight", "3", "--out", dir]] },
];

/** The --dtype tried, in order, when the default export refuses: the nearest types at the source's bits first. */
const NEAREST = {
  // layer-bits first: each layer at the ggml type of its own bits, the embeddings as the folder has them.
  gguf: { 2: ["layer-bits", "q2_k", "q3_k", "q4_k", "q4_0"], 3: ["layer-bits", "q3_k", "q4_k", "q4_1", "q4_0"], 4: ["layer-bits", "q4_k", "q4_1", "q4_0"] },
  onnx: { 2: ["q2", "q4", "q8"], 3: ["q4", "q8"], 4: ["q4", "q8"] },
};

const flags = parseFlags(
  process.argv.slice(2),
  {
    tokens: { type: "int", default: 2048, help: "WikiText-2 test tokens for every KL" },
    rows: { type: "list", default: ROWS.map((r) => r.key), help: `rows to run: ${ROWS.map((r) => r.key).join(",")}` },
    "peqa-steps": { type: "int", default: 40, help: "PEQA fine-tuning steps of the peqa3 row" },
    out: { type: "string", default: path.join(root, "bench/results/deploy.json"), help: "results JSON (a .log beside it)" },
  },
  "node bench/deploy.mjs — every issue-17 source row exported to GGUF and transformers.js: sizes, and KL in llama.cpp and transformers.js against slimtune's",
);
flags.peqaSteps = flags["peqa-steps"];
const unknown = flags.rows.filter((k) => !ROWS.some((r) => r.key === k));
if (unknown.length) throw new Error(`--rows: unknown ${unknown.join(", ")}; known: ${ROWS.map((r) => r.key).join(", ")}`);

ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-deploy-"));
// What a deployment ships: the run state finetune keeps beside an adapter (checkpoint/, metrics.jsonl) is not counted.
const folderBytes = (dir) =>
  fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => fs.statSync(path.join(dir, f)).isFile() && !f.endsWith(".slimtune-output") && !f.startsWith(`checkpoint${path.sep}`) && f !== "metrics.jsonl")
    .reduce((a, f) => a + fileBytes(path.join(dir, f)), 0);
const errorLine = (e) => String(e.message).split("\n").filter((l) => l.includes("error E_")).at(-1)?.replace(/^.*error (E_\w+): /, "$1: ") ?? String(e.message).split("\n").at(-1);
const helperKl = async (script, ref, target) => {
  const run = await runTimed(process.execPath, [path.join(root, "bench/lib", script), ref, target, "--tokens", String(flags.tokens), "--ctx", "256"], { echoPrefix: null });
  if (run.code !== 0) throw new Error(`${script} failed: ${run.stderr.slice(-500)}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1));
};

/**
 * The default export, else the first --dtype of the preference list export accepts. Returns what
 * was written (or null), the refusal of the default, and the dtypes skipped as unknown.
 */
async function exportAtOwnBits(format, row, dir, adapter, target) {
  const base = ["export", "--format", format, "--model", dir, ...(adapter ? ["--adapter", adapter] : [])];
  const attempt = async (dtype) => {
    fs.rmSync(target, { recursive: true, force: true });
    return cli([...base, ...(dtype ? ["--dtype", dtype, "--data", wikiTest] : []), "--out", target], { label: `${row.name}: export ${format}${dtype ? ` --dtype ${dtype}` : ""}` });
  };
  try {
    return { written: await attempt(null), dtype: "own", refused: null, notTried: [] };
  } catch (e) {
    const refused = errorLine(e);
    log(`  ${format} refused: ${refused}`);
    const notTried = [];
    for (const dtype of NEAREST[format][row.bits]) {
      try {
        return { written: await attempt(dtype), dtype, refused, notTried };
      } catch (e2) {
        const why = errorLine(e2);
        notTried.push({ dtype, why });
        log(`  --dtype ${dtype}: ${why}`);
      }
    }
    return { written: null, dtype: null, refused, notTried };
  }
}

const f32 = path.join(work, "float-f32.gguf");
const floatWeb = path.join(work, "float-web");
await cli(["export", "--format", "gguf", "--model", baseModel, "--dtype", "f32", "--out", f32], { label: "float reference GGUF" });
await cli(["export", "--format", "onnx", "--model", baseModel, "--dtype", "fp32", "--out", floatWeb], { label: "float reference transformers.js folder" });
const results = { machine: machineInfo(), flags, rows: [] };
for (const row of ROWS.filter((r) => flags.rows.includes(r.key))) {
  const dir = path.join(work, row.key);
  const adapter = row.adapter?.(dir);
  const r = { key: row.key, name: row.name, commands: [] };
  results.rows.push(r);
  try {
    for (const args of row.make(dir, flags)) r.commands.push((await cli(args, { label: `${row.name}: make` })).command);
  } catch (e) {
    r.source_refused = errorLine(e);
    log(`${row.name}: refused: ${r.source_refused}`);
    console.log(`${row.name}: refused: ${r.source_refused}`);
    writeJson(flags.out, results);
    continue;
  }
  r.source_bytes = folderBytes(dir) + (adapter ? folderBytes(adapter) : 0);
  const ours = await cli(["eval", "--model", dir, ...(adapter ? ["--adapter", adapter] : []), "--reference", baseModel, "--data", wikiTest, "--max-tokens", String(flags.tokens), "--ctx", "256"], { label: `${row.name}: slimtune KL` });
  r.slimtune_kl = ours.json.meanKl;
  r.slimtune_top1 = ours.json.top1Agreement;
  for (const [format, target, measure] of [
    ["gguf", `${dir}.gguf`, (t) => helperKl("llama-kl.mjs", f32, t)],
    ["onnx", `${dir}-web`, (t) => helperKl("onnx-kl.mjs", floatWeb, t)],
  ]) {
    const e = await exportAtOwnBits(format, row, dir, adapter, target);
    const out = { dtype: e.dtype, refused: e.refused, not_accepted: e.notTried };
    if (e.refused) console.log(`${row.name} → ${format}: refused: ${e.refused}${e.dtype ? `; measured at --dtype ${e.dtype}` : "; no --dtype of the list was accepted"}`);
    if (e.written) {
      const j = e.written.json;
      out.bytes = format === "gguf" ? fileBytes(target) : folderBytes(target);
      out.types = j.types ?? j.dtype;
      out.changes = j.changes ?? [];
      out.export_total_kl = j.total_kl ?? null;
      try {
        const m = await measure(target);
        out.kl = m.kl;
        out.top1 = m.top1;
        out.positions = m.positions;
      } catch (err) {
        out.kl_error = String(err.message).slice(0, 300);
        log(`  ${format} KL failed: ${out.kl_error}`);
      }
    }
    r[format] = out;
  }
  const ratio = (x) => (x.bytes ? `${(x.bytes / r.source_bytes).toFixed(3)}×` : "–");
  log(`${row.name}: folder ${r.source_bytes} B; GGUF ${r.gguf.bytes ?? "–"} B (${ratio(r.gguf)}), ONNX ${r.onnx.bytes ?? "–"} B (${ratio(r.onnx)}); KL slimtune ${r.slimtune_kl.toExponential(3)}, llama.cpp ${r.gguf.kl?.toExponential(3) ?? "–"}, transformers.js ${r.onnx.kl?.toExponential(3) ?? "–"}`);
  writeJson(flags.out, results);
}

const times = (x, base) => (Number.isFinite(x) && Number.isFinite(base) && base > 0 ? ` (${(x / base).toFixed(3)})` : "");
const exportCell = (x) => (!x ? "–" : x.dtype === null ? `refused: ${x.refused}` : x.dtype === "own" ? "own bits" : `--dtype ${x.dtype} (default refused)`);
console.log(
  mdTable(
    ["source", "folder bytes", "GGUF export", "GGUF bytes (×)", "ONNX export", "ONNX folder bytes (×)", "KL slimtune", "KL llama.cpp (×)", "KL transformers.js (×)"],
    results.rows.map((r) =>
      r.source_refused
        ? [r.name, `refused: ${r.source_refused}`, "–", "–", "–", "–", "–", "–", "–"]
        : [
            r.name,
            r.source_bytes,
            exportCell(r.gguf),
            r.gguf?.bytes ? `${r.gguf.bytes}${times(r.gguf.bytes, r.source_bytes)}` : "–",
            exportCell(r.onnx),
            r.onnx?.bytes ? `${r.onnx.bytes}${times(r.onnx.bytes, r.source_bytes)}` : "–",
            r.slimtune_kl.toExponential(3),
            r.gguf?.kl !== undefined ? `${r.gguf.kl.toExponential(3)}${times(r.gguf.kl, r.slimtune_kl)}` : "–",
            r.onnx?.kl !== undefined ? `${r.onnx.kl.toExponential(3)}${times(r.onnx.kl, r.slimtune_kl)}` : "–",
          ],
    ),
  ),
);
