// `slimtune demo`: PEQA's story on the bundled model (recipes/peqa-demo.ts) — quantize ref-llama-5m
// to 4 bits, tune only its scales on WikiText-2 valid, and show perplexity, sizes, time and task switching.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { isQuantBits } from "../../quant/spec.js";
import { runPeqaDemo } from "../../recipes/peqa-demo.js";
import { writeRunReport } from "../../report/run-report.js";
import { intArg, runAction } from "../args.js";
import { type Progress, createProgress } from "../progress.js";
import { runWithProgress } from "./finetune.js";

/** The fixtures folder `shared/` beside the repository (or the working directory). */
function findShared(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const start of [process.cwd(), here]) {
    let dir = start;
    for (let i = 0; i < 6; i++) {
      const candidate = path.join(dir, "..", "shared");
      if (fs.existsSync(path.join(candidate, "models", "ref-llama-5m"))) return path.resolve(candidate);
      dir = path.dirname(dir);
    }
  }
  return null;
}

export default defineCommand({
  meta: { name: "demo", description: "Quantize the bundled 5.5 M-parameter LLaMA to 4 bits, PEQA-tune it on WikiText-2, and report quality, size and time" },
  args: {
    model: { type: "string", description: "Model folder (default: shared/models/ref-llama-5m)" },
    bits: { type: "string", description: "Bits per weight (2, 3, 4, 8)", default: "4" },
    steps: { type: "string", description: "PEQA steps", default: "60" },
    "eval-tokens": { type: "string", description: "WikiText-2 test tokens to score", default: "65536" },
    out: { type: "string", description: "Output folder", default: "runs/demo" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const shared = findShared();
      if (!shared) throw new SlimtuneError("E_NOT_FOUND", "cannot find shared/ (models and WikiText-2) beside this checkout");
      const wikitext = path.join(shared, "data", "wikitext-2");
      const bits = intArg("bits", args.bits, 4);
      if (!isQuantBits(bits)) throw new SlimtuneError("E_ARG", `--bits ${bits} is not supported; use 2, 3, 4 or 8`);
      let bar: Progress | null = null;
      const steps = intArg("steps", args.steps, 60);
      const result = await runPeqaDemo(
        {
          modelDir: args.model ?? path.join(shared, "models", "ref-llama-5m"),
          trainFile: path.join(wikitext, "valid.txt"),
          testFile: path.join(wikitext, "test.txt"),
          bits,
          steps,
          evalTokens: intArg("eval-tokens", args["eval-tokens"], 65536, 2),
          outDir: args.out,
        },
        {
          say: (line) => {
            bar?.stop();
            bar = null;
            process.stdout.write(`${line}\n`);
          },
          onScoreProgress: (label, done, total) => {
            bar ??= createProgress(label, total);
            bar.update(done);
          },
          finetune: runWithProgress,
        },
      );
      // The run's report (what every model-writing command leaves): the quantized base's bit map and
      // perplexity RTN → PEQA on the test split, beside the folders the demo wrote.
      const paths = await writeRunReport({
        command: "demo",
        out: args.out,
        options: { bits, steps, "eval-tokens": intArg("eval-tokens", args["eval-tokens"], 65536, 2) },
        summary: {
          perplexity: { float32: result.float.perplexity, rtn: result.rtn.perplexity, peqa_tuned: result.tuned.perplexity },
          bytes: { float32: result.floatBytes, quantized: result.quantBytes, adapter: result.adapterBytes },
          seconds: result.seconds,
        },
        quality: { metric: "perplexity", before: result.rtn.perplexity, after: result.tuned.perplexity, higherIsBetter: false, on: "WikiText-2 test (RTN → PEQA-tuned)" },
        baseModel: path.join(args.out, `rtn${bits}`),
      });
      process.stdout.write(`report: ${paths.html}\n`);
    }),
});
