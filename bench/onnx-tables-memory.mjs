// Decode with the embedding/LM head as 4-bit tables (GatherBlockQuantized + MatMulNBits) against
// float, at the SmolLM2-135M shape (random N(0, 0.02²) weights, tied 49,152 × 576 table), for a 4-bit
// g32 symmetric model held in memory: peak RSS and decode tokens/s of slimtune's generation graph,
// each variant in its own process. A folder does not store tables yet, so `slimtune generate` and
// bench/decode.mjs cannot show this: this script builds the model in memory.
//
//   npx tsc -p tsconfig.build.json && node bench/onnx-tables-memory.mjs [--new 64] [--threads 1]

import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseFlags, root, shared } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    new: { type: "int", default: 64, help: "greedy new tokens" },
    prompt: { type: "int", default: 32, help: "prompt tokens" },
    threads: { type: "int", default: 1, help: "ONNX Runtime threads" },
    variant: { type: "string", default: "", help: "(internal) float or tables: run one variant in this process" },
  },
  "node bench/onnx-tables-memory.mjs — decode peak RSS with quantized vs float embedding/LM head",
);

if (!flags.variant) {
  const self = fileURLToPath(import.meta.url);
  const out = {};
  for (const variant of ["float", "tables"]) {
    const r = spawnSync(process.execPath, [self, "--variant", variant, "--new", String(flags.new), "--prompt", String(flags.prompt), "--threads", String(flags.threads)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    out[variant] = JSON.parse(r.stdout.trim().split("\n").at(-1));
    console.log(variant, out[variant]);
  }
  console.log(JSON.stringify({ rss_ratio: out.tables.peak_rss_mib / out.float.peak_rss_mib, speed_ratio: out.tables.tokens_per_s / out.float.tokens_per_s }));
} else {
  const dist = (m) => import(path.join(root, "dist", m));
  const { readLlamaConfig } = await dist("formats/hf-config.js");
  const { llamaParamShapes } = await dist("arch/llama/shapes.js");
  const { LlamaModel } = await dist("models/llama/model.js");
  const { Rng } = await dist("core/rng.js");
  const { quantizeModel } = await dist("quant/quantize-model.js");
  const { quantizeTables } = await dist("quant/tables.js");
  const { baseScoring } = await dist("models/base-scoring.js");
  const { Generator } = await dist("eval/generate.js");
  const config = readLlamaConfig(path.join(shared, "models/smollm2-135m-shape"));
  const rng = new Rng(1234);
  const weights = new Map();
  for (const [n, shape] of llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (n.endsWith("norm.weight")) data.fill(1);
    else rng.fillNormal(data, 0.02);
    weights.set(n, { data, shape });
  }
  let qm = quantizeModel(new LlamaModel(config, weights, null), { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true });
  if (flags.variant === "tables") qm = { ...qm, tables: quantizeTables(config, qm.dense, 4) };
  const rssBefore = process.memoryUsage().rss;
  const tokenizer = { encodePrompt: () => [], decode: () => "" };
  const g = await Generator.create(baseScoring({ kind: "quantized", model: qm }, { generation: true }), tokenizer, { threads: flags.threads });
  const prompt = Array.from({ length: flags.prompt }, () => 256 + rng.int(40_000));
  await g.generate(prompt, { maxNewTokens: 4, temperature: 0, eosTokenIds: [] });
  const t0 = performance.now();
  await g.generate(prompt, { maxNewTokens: flags.new, temperature: 0, eosTokenIds: [] });
  const s = (performance.now() - t0) / 1000;
  await g.release();
  console.log(JSON.stringify({ variant: flags.variant, peak_rss_mib: process.resourceUsage().maxRSS / 1024, rss_before_session_mib: rssBefore / 2 ** 20, tokens_per_s: flags.new / s }));
}
