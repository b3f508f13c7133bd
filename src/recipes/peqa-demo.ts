// PEQA's story on one model, start to finish: score the float model, quantize it to b bits (RTN per
// channel), score that, tune only its scales on a text file, score the tuned model through a task
// switch on the shared integer model, and report sizes and times. `slimtune demo` runs it on the
// bundled ref-llama-5m with WikiText-2.

import fs from "node:fs";
import path from "node:path";
import { tokenizeFile } from "../data/text-file.js";
import { GraphCache } from "../engine/index.js";
import { type PerplexityResult, perplexity } from "../eval/perplexity.js";
import { loadPeqaAdapter } from "../formats/peqa-adapter.js";
import { loadQuantizedFolder, saveQuantizedFolder } from "../formats/quantized/index.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import { PeqaTasks } from "../methods/peqa/tasks.js";
import { scoringFor } from "../methods/registry.js";
import { LlamaModel } from "../models/llama/model.js";
import type { ScoringModel } from "../models/scoring.js";
import { quantizeModel } from "../quant/quantize-model.js";
import { sizeReport } from "../quant/size.js";
import type { QuantBits } from "../quant/types.js";
import { defaultTrainOptions } from "../train/loop.js";
import { type FinetuneJob, type FinetuneResult, runFinetuneJob } from "./finetune-job.js";

export interface PeqaDemoOptions {
  modelDir: string;
  /** Tuning text (WikiText-2 valid). */
  trainFile: string;
  /** Scoring text (WikiText-2 test). */
  testFile: string;
  bits: QuantBits;
  steps: number;
  evalTokens: number;
  outDir: string;
}

export interface PeqaDemoHooks {
  /** One line of the report. */
  say(line: string): void;
  /** Progress of a scoring pass. */
  onScoreProgress?(label: string, done: number, total: number): void;
  /** Runs the tuning job (default in this thread; the CLI runs it in a worker with a progress line). */
  finetune?(job: FinetuneJob): Promise<FinetuneResult>;
}

export interface PeqaDemoResult {
  float: PerplexityResult;
  rtn: PerplexityResult;
  tuned: PerplexityResult;
  floatBytes: number;
  quantBytes: number;
  adapterBytes: number;
  seconds: number;
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export async function runPeqaDemo(o: PeqaDemoOptions, hooks: PeqaDemoHooks): Promise<PeqaDemoResult> {
  const { say } = hooks;
  const started = performance.now();
  const model = LlamaModel.load(o.modelDir);
  const tokenizer = await loadTokenizer(o.modelDir);
  const test = tokenizeFile(o.testFile, tokenizer, o.evalTokens);
  const floatBytes = fs.statSync(path.join(o.modelDir, "model.safetensors")).size;
  say(`model ${o.modelDir}: ${model.parameterCount.toLocaleString("en")} parameters, ${mib(floatBytes)} MiB`);

  const score = async (label: string, scoring: ScoringModel, cache = new GraphCache()): Promise<PerplexityResult> => {
    const r = await perplexity(scoring, cache, test, { ctx: 256, onProgress: (done, total) => hooks.onScoreProgress?.(label, done, total) });
    say(`${label.padEnd(22)} perplexity ${r.perplexity.toFixed(2).padStart(8)} on ${r.tokens} test tokens (${r.seconds.toFixed(1)} s)`);
    return r;
  };
  const float = await score("float32", scoringFor({ kind: "float", model }));

  const quantDir = path.join(o.outDir, `rtn${o.bits}`);
  saveQuantizedFolder(quantDir, quantizeModel(model, { scheme: "rtn", bits: o.bits, groupSize: "channel", symmetric: false }));
  // What is on disk from here on (scales rounded to float16, as GPTQ stores them).
  const qm = loadQuantizedFolder(quantDir);
  const size = sizeReport(qm);
  const quantBytes = fs.statSync(path.join(quantDir, "model.safetensors")).size;
  say(`quantized to ${o.bits} bits per channel (RTN) → ${quantDir}: ${mib(quantBytes)} MiB, ${size.bitsPerWeight.toFixed(2)} bits/weight in the linear layers`);
  const rtn = await score(`RTN ${o.bits}-bit`, scoringFor({ kind: "quantized", model: qm }));

  const adapterDir = path.join(o.outDir, `peqa${o.bits}-tuned`);
  const { summary } = await (hooks.finetune ?? runFinetuneJob)({
    modelDir: quantDir,
    method: "peqa",
    methodOptions: {},
    task: { kind: "lm", dataFile: o.trainFile, batch: 8, seq: 256, heldOut: 0, evalTokens: 0 },
    train: { ...defaultTrainOptions, steps: o.steps, lr: 2e-3, warmupSteps: 5, evalEvery: 0, checkpointEvery: 0, outDir: adapterDir },
  });
  const adapterBytes = fs.statSync(path.join(adapterDir, "adapter_model.safetensors")).size;
  say(
    `PEQA: ${summary.steps} steps on ${path.basename(o.trainFile)}, ${summary.trainableParameters.toLocaleString("en")} trainable scales, ` +
      `${summary.seconds.toFixed(1)} s (${Math.round(summary.tokensPerSecond)} tokens/s) → adapter ${(adapterBytes / 1024).toFixed(1)} KiB in ${adapterDir}`,
  );
  const tasks = new PeqaTasks(qm);
  tasks.add("tuned", loadPeqaAdapter(adapterDir, qm));
  const switchMs = tasks.use("tuned");
  const tuned = await score(`PEQA ${o.bits}-bit`, tasks.scoring, tasks.cache);
  const backMs = tasks.use("base");
  say(`task switch on the loaded model: ${switchMs.toFixed(3)} ms to the adapter, ${backMs.toFixed(3)} ms back to plain RTN (same compiled graph)`);

  say("");
  say("| model | perplexity | bytes on disk |");
  say("|---|---:|---:|");
  say(`| float32 | ${float.perplexity.toFixed(2)} | ${floatBytes.toLocaleString("en")} |`);
  say(`| RTN ${o.bits}-bit | ${rtn.perplexity.toFixed(2)} | ${quantBytes.toLocaleString("en")} |`);
  say(`| PEQA ${o.bits}-bit (+ adapter) | ${tuned.perplexity.toFixed(2)} | ${quantBytes.toLocaleString("en")} + ${adapterBytes.toLocaleString("en")} |`);
  const seconds = (performance.now() - started) / 1000;
  say(`total ${seconds.toFixed(1)} s`);
  return { float, rtn, tuned, floatBytes, quantBytes, adapterBytes, seconds };
}
