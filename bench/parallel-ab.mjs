#!/usr/bin/env node
// `finetune --parallel N` against --parallel 1, interleaved, in one run: median step tokens/s (after
// the warm-up steps) and peak RSS of each, per model and method. It decides --parallel's default.
//
//   node bench/parallel-ab.mjs [--models ref-llama-5m,smollm2-135m-shape] [--methods full,lora] [--parallel 2] [--steps 6] [--repeats 2]
//
// Models are bench/.cache folders from bench/methods.mjs (random weights) or ../shared's ref-llama-5m.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as H from "./lib/harness.mjs";

const SPEC = {
  models: { type: "list", default: ["ref-llama-5m", "smollm2-135m-shape"], help: "models" },
  methods: { type: "list", default: ["full", "lora"], help: "tuning methods" },
  parallel: { type: "int", default: 2, help: "the N compared with 1" },
  steps: { type: "int", default: 6, help: "steps per run (the first two are warm-up)" },
  repeats: { type: "int", default: 2, help: "runs per setting, interleaved" },
  out: { type: "string", default: path.join(H.root, "bench/results/parallel-ab.json"), help: "results JSON" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, "node bench/parallel-ab.mjs");
H.ensureBuilt();
const dirOf = (m) => (m === "ref-llama-5m" ? H.baseModel : path.join(H.root, "bench/.cache", m, "float"));
// The random shapes' folders have no tokenizer; the text is tokenized with ref-llama-5m's (ids < 4096 fit every vocabulary).
for (const m of a.models) {
  const dir = dirOf(m);
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) if (!fs.existsSync(path.join(dir, f))) fs.copyFileSync(path.join(H.baseModel, f), path.join(dir, f));
}
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
const work = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-parallel-"));
const rows = [];
for (const model of a.models) {
  for (const method of a.methods) {
    const res = { model, method, runs: [] };
    for (let r = 0; r < a.repeats; r++) {
      for (const parallel of [1, a.parallel]) {
        const out = path.join(work, `${model}-${method}-${parallel}-${r}`);
        await H.waitQuiet({ threshold: 0.25, pollS: 10, maxWaitS: 120, what: `${model} ${method} --parallel ${parallel}`, samples: 1 });
        const extra = method === "lora" ? ["--rank", "8", "--alpha", "16"] : [];
        const run = await H.cli(["finetune", "--method", method, ...extra, "--model", dirOf(model), "--data", H.wikiValid, "--steps", String(a.steps), "--batch", "8", "--seq", "256",
          "--held-out", "0", "--eval-every", "0", "--checkpoint-every", "0", "--warmup", "0", "--parallel", String(parallel), "--out", out], { label: `${model} ${method} --parallel ${parallel}` });
        const steps = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.kind === "train");
        const tps = median(steps.slice(2).map((s) => s.tokens_per_s));
        res.runs.push({ parallel, tokensPerS: tps, maxRssMb: run.run.maxRssMb, otherCpu: run.run.otherCpu, lastLoss: steps.at(-1).loss });
        H.log(`  ${model} ${method} --parallel ${parallel}: ${tps.toFixed(1)} tok/s, max RSS ${run.run.maxRssMb.toFixed(0)} MiB`);
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
    const best = (p) => Math.max(...res.runs.filter((x) => x.parallel === p).map((x) => x.tokensPerS));
    res.ratio = best(a.parallel) / best(1);
    rows.push(res);
    H.writeJson(a.out, { benchmark: "parallel-ab", machine: H.machineInfo(), command: `node bench/parallel-ab.mjs ${process.argv.slice(2).join(" ")}`.trim(), rows });
  }
}
process.stdout.write(H.mdTable(["model", "method", "--parallel 1 tok/s", `--parallel ${a.parallel} tok/s`, "ratio", "RSS MiB 1 / N"],
  rows.map((r) => {
    const one = r.runs.filter((x) => x.parallel === 1);
    const n = r.runs.filter((x) => x.parallel === a.parallel);
    return [r.model, r.method, Math.max(...one.map((x) => x.tokensPerS)).toFixed(1), Math.max(...n.map((x) => x.tokensPerS)).toFixed(1), r.ratio.toFixed(2), `${Math.max(...one.map((x) => x.maxRssMb)).toFixed(0)} / ${Math.max(...n.map((x) => x.maxRssMb)).toFixed(0)}`];
  })) + "\n");
fs.rmSync(work, { recursive: true, force: true });
