// Perplexity of ref-llama-5m on the first 65,536 WikiText-2 test tokens, by slimtune and by llama.cpp
// (node-llama-cpp) on the GGUF files slimtune writes (F32, F16, Q8_0, Q4_0), with the same protocol:
// non-overlapping windows of 256 tokens, each predicting its tokens 2..256. Targets (issue 10): F32
// within 0.1 % of slimtune's float perplexity, Q8_0 within 1 %.
//
//   npm run build && node bench/gguf-perplexity.mjs [--tokens 65536] [--dtypes f32,f16,q8_0,q4_0]
//     [--out bench/results/gguf-perplexity.json]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { baseModel, cli, ensureBuilt, log, machineInfo, mdTable, parseFlags, root, runTimed, setLogFile, wikiTest, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    tokens: { type: "int", default: 65_536, help: "WikiText-2 test tokens scored" },
    dtypes: { type: "list", default: ["f32", "f16", "q8_0", "q4_0"], help: "GGUF types" },
    out: { type: "string", default: path.join(root, "bench/results/gguf-perplexity.json"), help: "results JSON" },
  },
  "node bench/gguf-perplexity.mjs — slimtune vs llama.cpp perplexity on slimtune's GGUF exports",
);

ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-gguf-ppl-"));
const ours = await cli(["eval", "--model", baseModel, "--data", wikiTest, "--max-tokens", String(flags.tokens), "--ctx", "256"], { label: "slimtune float" });
const results = { machine: machineInfo(), flags, slimtune: { perplexity: ours.json.perplexity, tokens: ours.json.tokens }, rows: [] };
for (const dtype of flags.dtypes) {
  const file = path.join(work, `ref-${dtype}.gguf`);
  await cli(["export", "--format", "gguf", "--model", baseModel, "--dtype", dtype, "--out", file], { label: `GGUF ${dtype}` });
  const run = await runTimed(process.execPath, [path.join(root, "bench/lib/llama-perplexity.mjs"), file, "--tokens", String(flags.tokens), "--ctx", "256"], { echoPrefix: null });
  if (run.code !== 0) throw new Error(`llama-perplexity failed: ${run.stderr.slice(-500)}`);
  const r = JSON.parse(run.stdout.trim().split("\n").at(-1));
  const row = { dtype, bytes: fs.statSync(file).size, llama_cpp_perplexity: r.perplexity, tokens: r.tokens, relative_difference: r.perplexity / ours.json.perplexity - 1, seconds: r.seconds };
  log(`${dtype}: llama.cpp ${r.perplexity.toFixed(4)} vs slimtune ${ours.json.perplexity.toFixed(4)} (${(100 * row.relative_difference).toFixed(4)} %) over ${r.tokens} tokens`);
  results.rows.push(row);
  writeJson(flags.out, results);
}
console.log(
  mdTable(
    ["GGUF type", "file bytes", "llama.cpp perplexity", "slimtune float perplexity", "difference", "predicted tokens"],
    results.rows.map((r) => [r.dtype, r.bytes.toLocaleString("en-US"), r.llama_cpp_perplexity.toFixed(4), results.slimtune.perplexity.toFixed(4), `${(100 * r.relative_difference).toFixed(4)} %`, r.tokens]),
  ),
);
fs.rmSync(work, { recursive: true, force: true });
