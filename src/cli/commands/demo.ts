// `slimtune demo`: PEQA's story on the bundled model — quantize ref-llama-5m to 4 bits, tune only
// its scales on WikiText-2 valid, and show perplexity, sizes, time and task switching.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineCommand } from "citty";
import { tokenizeFile } from "../../data/text-file.js";
import { GraphCache } from "../../engine/index.js";
import { type PerplexityResult, perplexity } from "../../eval/perplexity.js";
import { scoringFor } from "../../eval/scoring.js";
import { SlimtuneError } from "../../errors.js";
import { saveQuantizedFolder } from "../../formats/gptq.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { loadPeqaAdapter } from "../../methods/peqa/adapter.js";
import { peqaMethod } from "../../methods/peqa/index.js";
import { PeqaTasks } from "../../methods/peqa/tasks.js";
import { LlamaModel } from "../../models/llama/model.js";
import { quantizeModel, sizeReport } from "../../quant/quantize-model.js";
import { lmTask } from "../../train/lm-task.js";
import { defaultTrainOptions } from "../../train/loop.js";
import { publishInto } from "../../util/publish.js";
import { intArg, runAction } from "../args.js";
import { type Progress, createProgress } from "../progress.js";
import { runTraining } from "./finetune.js";

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
      const modelDir = args.model ?? path.join(shared, "models", "ref-llama-5m");
      const wikitext = path.join(shared, "data", "wikitext-2");
      const bits = intArg("bits", args.bits, 4);
      const steps = intArg("steps", args.steps, 60);
      const evalTokens = intArg("eval-tokens", args["eval-tokens"], 65536, 2);
      const started = performance.now();
      const seconds = () => ((performance.now() - started) / 1000).toFixed(1);

      const model = LlamaModel.load(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      const test = tokenizeFile(path.join(wikitext, "test.txt"), tokenizer, evalTokens);
      const valid = tokenizeFile(path.join(wikitext, "valid.txt"), tokenizer);
      const floatBytes = fs.statSync(path.join(modelDir, "model.safetensors")).size;
      say(`model ${modelDir}: ${model.parameterCount.toLocaleString("en")} parameters, ${mib(floatBytes)} MiB`);

      const score = async (label: string, scoring: Parameters<typeof perplexity>[0], cache = new GraphCache()): Promise<PerplexityResult> => {
        let bar: Progress | null = null;
        const r = await perplexity(scoring, cache, test, {
          ctx: 256,
          onProgress: (done, total) => {
            bar ??= createProgress(label, total);
            bar.update(done);
          },
        });
        (bar as Progress | null)?.stop();
        say(`${label.padEnd(22)} perplexity ${r.perplexity.toFixed(2).padStart(8)} on ${r.tokens} WikiText-2 test tokens (${r.seconds.toFixed(1)} s)`);
        return r;
      };
      const float = await score("float32", scoringFor({ kind: "float", model }));

      const spec = { scheme: "rtn" as const, bits: bits as 2 | 3 | 4 | 8, groupSize: "channel" as const, symmetric: false };
      const qm = quantizeModel(model, spec);
      const quantDir = path.join(args.out, `rtn${bits}`);
      saveQuantizedFolder(quantDir, qm);
      const size = sizeReport(qm);
      const quantBytes = fs.statSync(path.join(quantDir, "model.safetensors")).size;
      say(`quantized to ${bits} bits per channel (RTN) → ${quantDir}: ${mib(quantBytes)} MiB, ${size.bitsPerWeight.toFixed(2)} bits/weight in the linear layers`);
      const rtn = await score(`RTN ${bits}-bit`, scoringFor({ kind: "quantized", model: qm }));

      const method = peqaMethod(qm);
      const adapterDir = path.join(args.out, `peqa${bits}-wikitext`);
      const summary = await runTraining(method, lmTask(valid, { batch: 8, seq: 256, heldOut: 0, evalTokens: 0 }), {
        ...defaultTrainOptions,
        steps,
        lr: 2e-3,
        warmupSteps: 5,
        evalEvery: 0,
        checkpointEvery: 0,
        outDir: adapterDir,
      });
      publishInto(adapterDir, (tmp) => method.save(tmp));
      const adapterBytes = fs.statSync(path.join(adapterDir, "adapter_model.safetensors")).size;
      say(
        `PEQA: ${summary.steps} steps on WikiText-2 valid, ${summary.trainableParameters.toLocaleString("en")} trainable scales, ` +
          `${summary.seconds.toFixed(1)} s (${Math.round(summary.tokensPerSecond)} tokens/s) → adapter ${(adapterBytes / 1024).toFixed(1)} KiB in ${adapterDir}`,
      );
      const tasks = new PeqaTasks(qm);
      tasks.add("wikitext", loadPeqaAdapter(adapterDir, qm));
      const switchMs = tasks.use("wikitext");
      const tuned = await score(`PEQA ${bits}-bit`, tasks.scoring, tasks.cache);
      const backMs = tasks.use("base");
      say(`task switch on the loaded model: ${switchMs.toFixed(3)} ms to the adapter, ${backMs.toFixed(3)} ms back to plain RTN (same compiled graph)`);

      say("");
      say("| model | perplexity | bytes on disk |");
      say("|---|---:|---:|");
      say(`| float32 | ${float.perplexity.toFixed(2)} | ${floatBytes.toLocaleString("en")} |`);
      say(`| RTN ${bits}-bit | ${rtn.perplexity.toFixed(2)} | ${quantBytes.toLocaleString("en")} |`);
      say(`| PEQA ${bits}-bit (+ adapter) | ${tuned.perplexity.toFixed(2)} | ${quantBytes.toLocaleString("en")} + ${adapterBytes.toLocaleString("en")} |`);
      say(`total ${seconds()} s`);
    }),
});

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
