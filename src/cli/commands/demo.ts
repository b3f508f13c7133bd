// `slimtune demo`: the main job on the bundled model — score it, fine-tune it on WikiText-2 valid,
// score it again on WikiText-2 test, and report quality, size and time.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../errors.js";
import { GraphCache } from "../../engine/index.js";
import { perplexity, type PerplexityResult } from "../../eval/perplexity.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { fullFineTuning } from "../../methods/full/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { frozenScoring } from "../../models/llama/scoring.js";
import { tokenizeFile } from "../../data/text-file.js";
import { defaultTrainOptions } from "../../train/loop.js";
import { publishInto } from "../../util/publish.js";
import { intArg, runAction } from "../args.js";
import { type Progress, createProgress } from "../progress.js";
import { runTraining } from "./finetune.js";

/** The fixtures folder `shared/` beside the repository (or the working directory). */
function findShared(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const starts = [process.cwd(), here];
  for (const start of starts) {
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
  meta: { name: "demo", description: "Fine-tune the bundled 5.5 M-parameter LLaMA on WikiText-2 and show perplexity before and after" },
  args: {
    model: { type: "string", description: "Model folder (default: shared/models/ref-llama-5m)" },
    steps: { type: "string", description: "Fine-tuning steps", default: "60" },
    "eval-tokens": { type: "string", description: "WikiText-2 test tokens to score", default: "65536" },
    out: { type: "string", description: "Output folder", default: "runs/demo" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const shared = findShared();
      if (!shared && !args.model) {
        throw new SlimtuneError("E_NOT_FOUND", "cannot find shared/models/ref-llama-5m beside this checkout; pass --model DIR");
      }
      const modelDir = args.model ?? path.join(shared!, "models", "ref-llama-5m");
      const wikitext = path.join(shared ?? ".", "data", "wikitext-2");
      const steps = intArg("steps", args.steps, 60);
      const evalTokens = intArg("eval-tokens", args["eval-tokens"], 65536, 2);
      const started = performance.now();

      const model = LlamaModel.load(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      const test = tokenizeFile(path.join(wikitext, "test.txt"), tokenizer, evalTokens);
      const train = tokenizeFile(path.join(wikitext, "valid.txt"), tokenizer);
      say(`model ${modelDir}: ${model.parameterCount.toLocaleString("en")} parameters, ${mib(4 * model.parameterCount)} MiB as float32`);

      const score = async (label: string): Promise<PerplexityResult> => {
        let bar: Progress | null = null;
        const r = await perplexity(frozenScoring(model), new GraphCache(), test, {
          ctx: 256,
          onProgress: (done, total) => {
            bar ??= createProgress(label, total);
            bar.update(done);
          },
        });
        (bar as Progress | null)?.stop();
        say(`${label}: perplexity ${r.perplexity.toFixed(2)} on ${r.tokens} WikiText-2 test tokens (${r.seconds.toFixed(1)} s)`);
        return r;
      };
      const before = await score("before fine-tuning");
      const method = fullFineTuning(model);
      const summary = await runTraining(method, train, {
        ...defaultTrainOptions,
        steps,
        heldOut: 0,
        evalEvery: 0,
        checkpointEvery: 0,
        lr: 3e-4,
        outDir: args.out,
      });
      say(`fine-tuned ${summary.steps} steps on WikiText-2 valid in ${summary.seconds.toFixed(1)} s (${Math.round(summary.tokensPerSecond)} tokens/s), loss ${summary.firstLoss?.toFixed(3)} → ${summary.lastLoss?.toFixed(3)}`);
      const after = await score("after fine-tuning");
      publishInto(args.out, (tmp) => method.save(tmp));
      const bytes = fs.statSync(path.join(args.out, "model.safetensors")).size;
      say(
        `\nperplexity ${before.perplexity.toFixed(2)} → ${after.perplexity.toFixed(2)}; model ${mib(bytes)} MiB in ${args.out}; ` +
          `total ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    }),
});

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
