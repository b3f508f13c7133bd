// `slimtune finetune`: trains a model with one of the tuning methods, on a text file (language
// modelling) or a labelled TSV (classification). Resumable; Ctrl-C checkpoints.

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { findMethod, methods } from "../../methods/registry.js";
import type { TuningMethod } from "../../methods/method.js";
import { loadBase } from "../../models/load.js";
import { tokenizeFile } from "../../data/text-file.js";
import { lmTask } from "../../train/lm-task.js";
import { classifyTask } from "../../train/classify-task.js";
import { findClassifierHead } from "../../formats/classifier-head.js";
import { readLabelledTsv } from "../../data/tsv.js";
import { tokenizeExamples } from "../../data/examples.js";
import { SlimtuneError } from "../../core/errors.js";
import { defaultTrainOptions, train, type TrainOptions, type TrainSummary } from "../../train/loop.js";
import { AdamW } from "../../train/adamw.js";
import type { TaskEval, TrainTask } from "../../train/task.js";
import { publishInto } from "../../core/publish.js";
import { floatArg, intArg, printJson, requiredArg, runAction } from "../args.js";
import { methodArgs, parseMethodFlags } from "../method-flags.js";
import { createProgress, type Progress } from "../progress.js";

const d = defaultTrainOptions;

export default defineCommand({
  meta: { name: "finetune", description: "Fine-tune a model; writes the result to --out, resumable with --resume" },
  args: {
    method: { type: "string", description: methods.map((m) => `${m.name}: ${m.summary}`).join("; "), default: "full" },
    model: { type: "string", description: "Model folder (float Hugging Face folder, or a quantized one for peqa/qlora)" },
    task: { type: "string", description: "lm (text file, next-token loss) or classify (labelled TSV)", default: "lm" },
    data: { type: "string", description: "Training data: a UTF-8 text file (lm) or a text<TAB>label TSV with a header (classify)" },
    "eval-data": { type: "string", description: "classify: dev TSV scored for accuracy" },
    "max-len": { type: "string", description: "classify: tokens kept per example", default: "128" },
    "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
    "eval-examples": { type: "string", description: "classify: dev examples scored per eval (default: all)" },
    out: { type: "string", description: "Output folder: the result, checkpoint/ and metrics.jsonl" },
    steps: { type: "string", description: "Optimizer steps", default: "100" },
    batch: { type: "string", description: "Sequences per micro-batch", default: "8" },
    seq: { type: "string", description: "Tokens per sequence", default: "256" },
    lr: { type: "string", description: "Peak learning rate", default: String(d.lr) },
    warmup: { type: "string", description: "Linear warm-up steps", default: String(d.warmupSteps) },
    "min-lr-ratio": { type: "string", description: "Final learning rate as a fraction of the peak (cosine decay)", default: String(d.minLrRatio) },
    "weight-decay": { type: "string", description: "AdamW decoupled weight decay", default: String(d.weightDecay) },
    clip: { type: "string", description: "Max global gradient norm (0: off)", default: String(d.clip) },
    accumulate: { type: "string", description: "Micro-batches per optimizer step", default: String(d.accumulate) },
    seed: { type: "string", description: "Seed for batch sampling and initialisation", default: String(d.seed) },
    "held-out": { type: "string", description: "Fraction of the data (its tail) held out for eval", default: "0.05" },
    "eval-every": { type: "string", description: "Held-out eval every N steps (0: only before and after)", default: String(d.evalEvery) },
    "eval-tokens": { type: "string", description: "Held-out tokens scored per eval", default: "32768" },
    "checkpoint-every": { type: "string", description: "Checkpoint every N steps", default: String(d.checkpointEvery) },
    adapter: { type: "string", description: "Start from this adapter folder (lora, qlora, peqa)" },
    ...methodArgs(methods),
    resume: { type: "boolean", description: "Continue from --out/checkpoint" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    json: { type: "boolean", description: "Print the summary as one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const definition = findMethod(args.method);
      const modelDir = requiredArg("model", args.model);
      const dataFile = requiredArg("data", args.data);
      const seed = intArg("seed", args.seed, d.seed, 0);
      const opts: TrainOptions = {
        outDir: requiredArg("out", args.out),
        steps: intArg("steps", args.steps, 100),
        lr: floatArg("lr", args.lr, d.lr),
        warmupSteps: intArg("warmup", args.warmup, d.warmupSteps, 0),
        minLrRatio: floatArg("min-lr-ratio", args["min-lr-ratio"], d.minLrRatio),
        weightDecay: floatArg("weight-decay", args["weight-decay"], d.weightDecay),
        clip: floatArg("clip", args.clip, d.clip),
        accumulate: intArg("accumulate", args.accumulate, d.accumulate),
        seed,
        evalEvery: intArg("eval-every", args["eval-every"], d.evalEvery, 0),
        checkpointEvery: intArg("checkpoint-every", args["checkpoint-every"], d.checkpointEvery, 0),
        resume: Boolean(args.resume),
        threads: args.threads ? intArg("threads", args.threads, 0) : undefined,
      };
      const heldOut = floatArg("held-out", args["held-out"], 0.05);
      const base = loadBase(modelDir);
      const method = definition.create(base, parseMethodFlags(definition, args), { seed, adapter: args.adapter });
      const tokenizer = await loadTokenizer(modelDir);
      const batch = intArg("batch", args.batch, 8);
      let task: TrainTask;
      let textTokens: Int32Array;
      if (args.task === "lm") {
        textTokens = tokenizeFile(dataFile, tokenizer);
        task = lmTask(textTokens, {
          batch,
          seq: intArg("seq", args.seq, 256, 2),
          heldOut,
          evalTokens: intArg("eval-tokens", args["eval-tokens"], 32768, 2),
        });
      } else if (args.task === "classify") {
        const train = tokenizeExamples(readLabelledTsv(dataFile).examples, tokenizer);
        textTokens = Int32Array.from(train.flatMap((e) => Array.from(e.ids)));
        const devFile = args["eval-data"];
        const dev = devFile ? readLabelledTsv(devFile) : null;
        const numLabels = args["num-labels"]
          ? intArg("num-labels", args["num-labels"], 2, 2)
          : Math.max(...train.map((e) => e.label + 1), dev?.numLabels ?? 2);
        const head = args.adapter ? findClassifierHead([args.adapter]) : findClassifierHead([modelDir]);
        task = classifyTask(method.config, train, dev ? tokenizeExamples(dev.examples, tokenizer) : [], {
          batch,
          maxLen: intArg("max-len", args["max-len"], 128, 2),
          numLabels,
          padId: method.config.eosTokenId ?? 0,
          seed,
          head: head?.head,
          evalExamples: args["eval-examples"] ? intArg("eval-examples", args["eval-examples"], 1) : undefined,
        });
      } else {
        throw new SlimtuneError("E_ARG", `unknown --task "${args.task}"; choose lm or classify`);
      }
      // A method's own first phase (ReALLM's block-wise fit), skipped when resuming a run.
      const prepared =
        method.prepare && !opts.resume
          ? await method.prepare({
              tokens: textTokens,
              seq: intArg("seq", args.seq, 256, 2),
              seed,
              threads: opts.threads,
              optimizer: (params) => new AdamW(params),
              log: (m) => process.stderr.write(`${m}\n`),
            })
          : null;
      const summary = await runTraining(method, task, opts);
      let files: Record<string, number> = {};
      if (!summary.stopped) {
        const written = publishInto(opts.outDir, (tmp) => {
          method.save(tmp);
          task.saveExtra(tmp);
        });
        files = Object.fromEntries(written.map((f) => [f, fs.statSync(path.join(opts.outDir, f)).size]));
      }
      report({ ...summary, files, ...(prepared ? { prepared } : {}) }, Boolean(args.json));
      if (summary.stopped) process.exitCode = 130;
    }),
});

/** Trains with a progress bar; Ctrl-C (SIGINT/SIGTERM) checkpoints and stops cleanly. */
export async function runTraining(method: TuningMethod, task: TrainTask, opts: TrainOptions): Promise<TrainSummary> {
  let stopRequested = false;
  const onSignal = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    process.stderr.write("\nstopping after this step; writing a checkpoint (resume with --resume)\n");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let progress: Progress | null = null;
  try {
    return await train(method, task, opts, {
      onStep: (r, total) => {
        progress ??= createProgress(`${method.name} fine-tuning`, total);
        progress.update(r.step, { loss: r.loss.toFixed(4), "tok/s": Math.round(r.tokensPerSecond) });
      },
      onEval: (step, r) => process.stderr.write(`${progress ? "\n" : ""}step ${step}: held-out loss ${r.loss.toFixed(4)}${describeMetrics(r)}\n`),
      shouldStop: () => stopRequested,
    });
  } finally {
    (progress as Progress | null)?.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export function describeMetrics(r: TaskEval): string {
  return Object.entries(r.metrics)
    .map(([k, v]) => `, ${k} ${v.toFixed(k === "accuracy" ? 4 : 2)}`)
    .join("");
}

function report(s: TrainSummary & { files: Record<string, number> }, json: boolean): void {
  if (json) {
    printJson(s);
    return;
  }
  const lines = [
    `${s.method}: ${s.steps} steps${s.resumedFrom ? ` (resumed at ${s.resumedFrom})` : ""}, ${s.seconds.toFixed(1)} s, ${Math.round(s.tokensPerSecond)} tokens/s`,
    `trainable parameters ${s.trainableParameters.toLocaleString("en")} of ${s.totalParameters.toLocaleString("en")}`,
    `train loss ${s.firstLoss?.toFixed(4) ?? "-"} → ${s.lastLoss?.toFixed(4) ?? "-"}`,
  ];
  if (s.heldOutBefore && s.heldOutAfter) {
    lines.push(`held-out loss ${s.heldOutBefore.loss.toFixed(4)} → ${s.heldOutAfter.loss.toFixed(4)}${describeMetrics(s.heldOutAfter)}`);
  }
  lines.push(`peak memory ${s.peakRssMb.toFixed(0)} MiB`);
  const bytes = Object.values(s.files).reduce((a, b) => a + b, 0);
  if (bytes > 0) lines.push(`wrote ${Object.keys(s.files).join(", ")} (${bytes.toLocaleString("en")} bytes)`);
  lines.push(s.stopped ? `stopped; checkpoint in ${s.outDir}/checkpoint (resume with --resume)` : `saved to ${s.outDir}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
