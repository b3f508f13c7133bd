// Issue 17 item 4: the transformers.js folder `export --format onnx` writes for each compressed
// ref-llama-5m folder, its bytes against the source folder's, and KL to the float model measured
// inside transformers.js (the export run by @huggingface/transformers on the CPU, against the fp32
// export of the float model run the same way) beside slimtune's KL of the source folder (`eval
// --reference`). Two exports per row: the default (no --dtype: every layer at its own bits, the
// embedding/LM head as the folder has them, float) and `--dtype q4` (layers that fit within 4 bits
// kept, the embedding/LM head quantized 4-bit g32 symmetric: the "~4-bit file").
//
//   npx tsc -p tsconfig.build.json && node bench/onnx-deploy.mjs [--tokens 2048] [--rows rtn4-g32,…]
//     [--dtypes own,q4] [--out bench/results/onnx-deploy.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AutoModelForCausalLM, Tensor, env } from "@huggingface/transformers";
import { baseModel, cli, ensureBuilt, log, machineInfo, mdTable, parseFlags, root, setLogFile, wikiTest, wikiValid, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    tokens: { type: "int", default: 2048, help: "WikiText-2 test tokens (windows of 256) for both KLs" },
    rows: { type: "string", default: "", help: "comma-separated row ids (default: all)" },
    dtypes: { type: "string", default: "own,q4", help: "exports per row: own (no --dtype) and/or ONNX dtypes" },
    out: { type: "string", default: path.join(root, "bench/results/onnx-deploy.json"), help: "results JSON" },
  },
  "node bench/onnx-deploy.mjs — ONNX export at the model's own bits: sizes and KL in transformers.js vs slimtune",
);

const CTX = 256;
const ROWS = [
  { id: "rtn4-g32", name: "RTN-4 g32", quantize: ["--bits", "4", "--group-size", "32"] },
  // g128 does not divide ref-llama-5m's 704 down_proj columns (quantize refuses it): g64 instead.
  { id: "rtn4-g64", name: "RTN-4 g64", quantize: ["--bits", "4", "--group-size", "64"] },
  { id: "gptq3-g64-act", name: "GPTQ-3 g64 act-order", quantize: ["--method", "gptq", "--bits", "3", "--group-size", "64", "--act-order", "--calib", wikiValid] },
  { id: "gptq2-g32", name: "GPTQ-2 g32", quantize: ["--method", "gptq", "--bits", "2", "--group-size", "32", "--calib", wikiValid] },
  { id: "mixed-3", name: "mixed, 3-bit average (importance, g64)", quantize: ["--avg-bits", "3", "--allocation", "importance", "--data", wikiValid, "--group-size", "64"] },
  { id: "reallm-3", name: "ReALLM-3", quantize: ["--method", "reallm", "--bits-per-weight", "3"] },
].filter((r) => !flags.rows || flags.rows.split(",").includes(r.id));

ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const dist = (m) => import(path.join(root, "dist", m));
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { tokenizeFile } = await dist("data/text-file.js");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-onnx-deploy-"));
const folderBytes = (dir) => fs.readdirSync(dir, { recursive: true }).map((f) => path.join(dir, String(f))).filter((f) => fs.statSync(f).isFile() && !f.endsWith(".slimtune-output")).reduce((a, f) => a + fs.statSync(f).size, 0);

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = work;
const tokens = tokenizeFile(wikiTest, await loadTokenizer(baseModel), flags.tokens);
const windows = Array.from({ length: Math.floor(tokens.length / CTX) }, (_, w) => tokens.subarray(w * CTX, (w + 1) * CTX));

/** Log-probabilities [window][position·V] of the exported folder `name` in transformers.js. */
async function transformersJsLogProbs(name, dtype) {
  const lm = await AutoModelForCausalLM.from_pretrained(name, { dtype, device: "cpu" });
  const out = [];
  for (const w of windows) {
    const ids = new Tensor("int64", BigInt64Array.from(w, BigInt), [1, w.length]);
    const mask = new Tensor("int64", new BigInt64Array(w.length).fill(1n), [1, w.length]);
    const { logits } = await lm({ input_ids: ids, attention_mask: mask });
    out.push(logSoftmaxRows(logits.data, logits.dims.at(-1)));
  }
  await lm.dispose();
  return out;
}

function logSoftmaxRows(x, V) {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / V; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, x[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(x[r * V + v] - m);
    const l = m + Math.log(s);
    for (let v = 0; v < V; v++) out[r * V + v] = x[r * V + v] - l;
  }
  return out;
}

/** Mean KL(ref ‖ model) over positions predicting tokens 2..CTX of each window, and top-1 agreement. */
function klOf(ref, model) {
  let kl = 0;
  let agree = 0;
  let n = 0;
  for (let w = 0; w < ref.length; w++) {
    const V = ref[w].length / CTX;
    for (let t = 0; t < CTX - 1; t++) {
      let k = 0;
      let ra = 0;
      let ma = 0;
      for (let v = 0; v < V; v++) {
        const p = ref[w][t * V + v];
        k += Math.exp(p) * (p - model[w][t * V + v]);
        if (p > ref[w][t * V + ra]) ra = v;
        if (model[w][t * V + v] > model[w][t * V + ma]) ma = v;
      }
      kl += k;
      agree += ra === ma ? 1 : 0;
      n++;
    }
  }
  return { kl: kl / n, top1: agree / n, positions: n };
}

await cli(["export", "--format", "onnx", "--model", baseModel, "--out", path.join(work, "float")], { label: "float reference (fp32)" });
const reference = await transformersJsLogProbs("float", "fp32");
const results = { machine: machineInfo(), flags, windows: windows.length, ctx: CTX, rows: [] };
for (const row of ROWS) {
  const dir = path.join(work, row.id);
  await cli(["quantize", "--model", baseModel, ...row.quantize, "--out", dir], { label: `${row.name}: quantize` });
  const ours = await cli(["eval", "--model", dir, "--reference", baseModel, "--data", wikiTest, "--max-tokens", String(flags.tokens), "--ctx", String(CTX)], { label: `${row.name}: slimtune KL` });
  const r = { id: row.id, name: row.name, source_bytes: folderBytes(dir), slimtune_kl: ours.json.meanKl, slimtune_top1: ours.json.top1Agreement, exports: [] };
  for (const dtype of flags.dtypes.split(",").map((d) => (d === "own" ? null : d))) {
    const name = `${row.id}-${dtype ?? "own"}`;
    try {
      const exp = await cli(["export", "--format", "onnx", "--model", dir, ...(dtype ? ["--dtype", dtype] : []), "--data", wikiTest, "--out", path.join(work, name)], { label: `${row.name}: export onnx ${dtype ?? "(own bits)"}` });
      const m = klOf(reference, await transformersJsLogProbs(name, exp.json.dtype));
      r.exports.push({ dtype: dtype ?? "own", written: exp.json.dtype, bytes: folderBytes(path.join(work, name)), changes: exp.json.changes, export_total_kl: exp.json.total_kl ?? null, transformers_js_kl: m.kl, transformers_js_top1: m.top1, positions: m.positions });
      log(`  ${name}: ${folderBytes(path.join(work, name))} B (${(folderBytes(path.join(work, name)) / r.source_bytes).toFixed(3)}× the folder), KL in transformers.js ${m.kl.toExponential(3)} vs slimtune ${r.slimtune_kl.toExponential(3)}`);
    } catch (e) {
      r.exports.push({ dtype: dtype ?? "own", error: String(e.message).split("\n").at(-1) });
      log(`  ${name}: ${String(e.message).split("\n").at(-1)}`);
    }
  }
  results.rows.push(r);
  writeJson(flags.out, results);
}
console.log(
  mdTable(
    ["source folder", "folder bytes", "export", "ONNX folder bytes (× folder)", "KL slimtune", "KL transformers.js (× slimtune)", "top-1 slimtune / transformers.js", "what the export changed"],
    results.rows.flatMap((r) =>
      r.exports.map((e) => [
        r.name,
        r.source_bytes,
        e.dtype === "own" ? `default (${e.written ?? "—"})` : `--dtype ${e.dtype}`,
        e.error ? e.error : `${e.bytes} (${(e.bytes / r.source_bytes).toFixed(3)})`,
        r.slimtune_kl.toExponential(3),
        e.error ? "—" : `${e.transformers_js_kl.toExponential(3)} (${(e.transformers_js_kl / r.slimtune_kl).toFixed(3)})`,
        e.error ? "—" : `${(100 * r.slimtune_top1).toFixed(1)} % / ${(100 * e.transformers_js_top1).toFixed(1)} %`,
        e.error ? "—" : e.changes.length === 0 ? "nothing" : e.changes.map((c) => `${c.kind} ${c.from} → ${c.to} (${c.tensors}${c.kl === undefined ? "" : `, KL ${c.kl.toExponential(2)}`})`).join("; "),
      ]),
    ),
  ),
);
