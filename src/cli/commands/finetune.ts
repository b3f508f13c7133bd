// `slimtune finetune`: trains a model with one of the tuning methods, on a text file (language
// modelling) or a labelled TSV (classification), in a worker thread (cli/train-worker.ts) so the
// progress line stays live. Resumable; Ctrl-C checkpoints after the current step, twice stops at once.

import fs from "node:fs";
import { defineCommand } from "citty";
import { replaceDirAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { tempSiblingPrefix } from "../../core/output.js";
import { cliName } from "../../methods/flags.js";
import type { MethodDefinition } from "../../methods/method.js";
import { findMethod, methods } from "../../methods/registry.js";
import type { FinetuneJob, FinetuneResult, JobTask } from "../../recipes/finetune-job.js";
import { type TrainOptions, type TrainSummary, defaultTrainOptions } from "../../train/loop.js";
import type { TaskEval } from "../../train/task.js";
import { floatArg, intArg, printJson, requiredArg, runAction } from "../args.js";
import { methodArgs, parseMethodFlags } from "../method-flags.js";
import { type Progress, createProgress } from "../progress.js";
import { fineGatesRemovalLines } from "../pruned-model-notes.js";
import { runInWorker } from "../train-worker.js";
import type { OutputContext } from "../output-context.js";
import { sftJobTask } from "../sft-args.js";
import { qualityFromEvals } from "../../report/quality.js";
import { writeRunReport } from "../../report/run-report.js";

const d = defaultTrainOptions;

export default defineCommand({
  meta: { name: "finetune", description: "Fine-tune a model; writes the result to --out, resumable with --resume" },
  args: {
    method: { type: "string", description: methods.map((m) => `${m.name}: ${m.summary}`).join("; "), default: "full" },
    model: { type: "string", description: "Model folder (float Hugging Face folder, or a quantized one for peqa/qlora)" },
    task: { type: "string", description: "lm (text file, next-token loss), classify (labelled TSV) or sft (instruction/chat JSONL, loss on the answers); default: sft for a .jsonl --data, else lm" },
    data: { type: "string", description: "Training data: a UTF-8 text file (lm), a text<TAB>label TSV with a header (classify), or JSONL records {text} | {prompt,completion} | {instruction,input,output} | {messages} (sft)" },
    "eval-data": { type: "string", description: "Held-out data scored before, during and after training: lm a text file (default: the --held-out tail), classify a dev TSV (accuracy), sft a JSONL (answer loss; default: --held-out of the records)" },
    "data-format": { type: "string", description: "sft: text, prompt-completion, alpaca or messages (default: from the first record's fields)" },
    "chat-template": { type: "string", description: "sft: a Jinja chat template file (default: the model's tokenizer_config.json chat_template, else a plain default per format)" },
    "train-on-prompt": { type: "boolean", description: "sft: put the loss on prompt tokens too (default: answers only)" },
    "too-long": { type: "string", description: "sft: an example longer than --seq: cut-prompt (cut the prompt from the left, keep the answer) or drop", default: "cut-prompt" },
    pack: { type: "boolean", description: "sft: pack several examples into each --seq window (attention stays inside each); --no-pack: one per row", default: true },
    "max-len": { type: "string", description: "classify: tokens kept per example", default: "128" },
    "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
    "eval-examples": { type: "string", description: "classify, sft: held-out examples scored per eval (default: all)" },
    out: { type: "string", description: "Output folder: the result, checkpoint/ and metrics.jsonl" },
    steps: { type: "string", description: "Optimizer steps", default: "100" },
    epochs: { type: "string", description: "Passes over the training data instead of --steps (steps = epochs × steps per pass)" },
    batch: { type: "string", description: "Sequences per micro-batch", default: "8" },
    seq: { type: "string", description: "Tokens per sequence", default: "256" },
    lr: { type: "string", description: `Peak learning rate (default per method: ${methods.map((m) => `${m.name} ${m.defaultLr}`).join(", ")})` },
    keep: { type: "string", description: "Which weights are the result: last (after the final step) or best (the held-out evaluation with the lowest loss, or the highest accuracy when the task has one)", default: "last" },
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
    "checkpoint-activations": { type: "boolean", description: "Recompute each layer in the backward instead of keeping its activations (less memory, about one more forward per step)" },
    "allow-long-context": { type: "boolean", description: "Allow --seq/--max-len past the model's max_position_embeddings (meaningful only with RoPE scaling)" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    parallel: { type: "string", description: "lm: run each batch as N parts at once, one core each (same results; on 2 cores 0.55× the speed of 1, see docs/benchmarks.md)", default: "1" },
    json: { type: "boolean", description: "Print the summary as one JSON object on stdout" },
  },
  run: ({ args, rawArgs, data }) =>
    runAction(async () => {
      const definition = findMethod(args.method);
      refuseOtherMethodsFlags(definition, rawArgs);
      const modelDir = requiredArg("model", args.model);
      if (!fs.existsSync(modelDir)) throw new SlimtuneError("E_NOT_FOUND", "model folder not found; pass a Hugging Face model folder with config.json and model.safetensors", modelDir);
      const dataFile = requiredArg("data", args.data);
      const seed = intArg("seed", args.seed, d.seed, 0);
      const opts: TrainOptions = {
        outDir: requiredArg("out", args.out),
        steps: intArg("steps", args.steps, 100),
        lr: floatArg("lr", args.lr, definition.defaultLr),
        keep: parseKeep(args.keep),
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
        checkpointActivations: Boolean(args["checkpoint-activations"]),
        parallel: intArg("parallel", args.parallel, 1),
      };
      const batch = intArg("batch", args.batch, 8);
      let task: JobTask;
      const taskKind = args.task ?? (dataFile.toLowerCase().endsWith(".jsonl") ? "sft" : "lm");
      if (taskKind === "sft") {
        task = sftJobTask(args, dataFile, batch, seed);
      } else if (taskKind === "lm") {
        task = {
          kind: "lm",
          dataFile,
          ...(args["eval-data"] ? { evalFile: args["eval-data"] } : {}),
          batch,
          seq: intArg("seq", args.seq, 256, 2),
          heldOut: floatArg("held-out", args["held-out"], 0.05),
          evalTokens: intArg("eval-tokens", args["eval-tokens"], 32768, 2),
        };
      } else if (args.task === "classify") {
        task = {
          kind: "classify",
          dataFile,
          evalFile: args["eval-data"],
          batch,
          maxLen: intArg("max-len", args["max-len"], 128, 2),
          numLabels: args["num-labels"] ? intArg("num-labels", args["num-labels"], 2, 2) : undefined,
          evalExamples: args["eval-examples"] ? intArg("eval-examples", args["eval-examples"], 1) : undefined,
        };
      } else {
        throw new SlimtuneError("E_ARG", `unknown --task "${args.task}"; choose lm, classify or sft`);
      }
      task.allowLongContext = Boolean(args["allow-long-context"]);
      const job: FinetuneJob = { modelDir, method: definition.name, methodOptions: parseMethodFlags(definition, args), adapter: args.adapter, task, train: opts };
      // --overwrite on a folder of the user's: the run lives in a staging folder, which replaces
      // theirs only once the result is complete.
      const foreign = (data as OutputContext | undefined)?.outputState === "foreign";
      if (foreign && opts.resume) throw new SlimtuneError("E_ARG", "--resume continues a run in a folder slimtune wrote; this one holds other files", opts.outDir);
      const staging = foreign ? fs.mkdtempSync(tempSiblingPrefix(opts.outDir, "staging")) : null;
      if (args.epochs) job.epochs = intArg("epochs", args.epochs, 1);
      const outDir = opts.outDir;
      let result: FinetuneResult;
      try {
        result = await runWithProgress(staging ? { ...job, train: { ...opts, outDir: staging } } : job);
        if (staging && !result.summary.stopped) replaceDirAtomic(outDir, (tmp) => moveEntries(staging, tmp));
      } finally {
        if (staging) fs.rmSync(staging, { recursive: true, force: true });
      }
      const { summary, files, prepared, data: sftData } = result;
      if (!summary.stopped) {
        await writeRunReport({ command: "finetune", out: outDir, options: args, summary: { ...summary, files }, quality: qualityFromEvals(summary.heldOutBefore, summary.heldOutAfter, args["eval-data"] ?? "the held-out part of --data"), parameters: summary.totalParameters, baseModel: modelDir });
      }
      report({ ...summary, outDir, files, ...(prepared ? { prepared } : {}), ...(sftData ? { data: sftData } : {}) }, Boolean(args.json), staging !== null);
      // FineGates' result is a pruned folder: what went (its finegates.json has the numbers) and what loads it.
      if (definition.name === "finegates" && !summary.stopped && !args.json) {
        for (const line of fineGatesRemovalLines(outDir)) process.stdout.write(`${line}\n`);
      }
      if (summary.stopped) process.exitCode = 130;
    }),
});

/**
 * Runs a job in a worker thread with a live progress line (step, loss, tokens/s, ETA, memory,
 * redrawn every second even while a step runs); Ctrl-C stops after the step, twice at once.
 */
export async function runWithProgress(job: FinetuneJob): Promise<FinetuneResult> {
  let progress: Progress | null = null;
  let last: { step: number; fields: Record<string, string | number> } = { step: 0, fields: {} };
  const rss = () => `${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GB`;
  const timer = setInterval(() => progress?.update(last.step, { ...last.fields, rss: rss() }), 1000);
  try {
    return await runInWorker(job, {
      onStart: (method, total) => {
        progress = createProgress(`${method} fine-tuning`, total);
      },
      onStep: (r, total) => {
        progress ??= createProgress("fine-tuning", total);
        last = { step: r.step, fields: { loss: r.loss.toFixed(4), "tok/s": Math.round(r.tokensPerSecond) } };
        progress.update(r.step, { ...last.fields, rss: rss() });
      },
      onEval: (step, r) => process.stderr.write(`${progress && process.stderr.isTTY ? "\n" : ""}step ${step}: held-out loss ${r.loss.toFixed(4)}${describeMetrics(r)}\n`),
      onStopRequested: () => process.stderr.write("\nstopping after this step; writing a checkpoint (resume with --resume; Ctrl-C again stops at once)\n"),
    });
  } finally {
    clearInterval(timer);
    (progress as Progress | null)?.stop();
  }
}

export function describeMetrics(r: TaskEval): string {
  return Object.entries(r.metrics)
    .map(([k, v]) => `, ${k} ${v.toFixed(k === "accuracy" ? 4 : 2)}`)
    .join("");
}

function parseKeep(value: string | undefined): "last" | "best" {
  if (value === undefined || value === "last" || value === "best") return value ?? "last";
  throw new SlimtuneError("E_ARG", `--keep "${value.slice(0, 40)}" is unknown; choose last or best`);
}

/** `--rank` with `--method peqa` would be silently ignored: a flag only other methods take is an error. */
function refuseOtherMethodsFlags(definition: MethodDefinition, rawArgs: readonly string[]): void {
  const own = new Set(Object.entries(definition.flags).map(([key, spec]) => cliName(key, spec)));
  for (const other of methods) {
    if (other === definition) continue;
    for (const [key, spec] of Object.entries(other.flags)) {
      const name = cliName(key, spec);
      if (own.has(name)) continue;
      if (rawArgs.some((w) => w === `--${name}` || w.startsWith(`--${name}=`) || w === `--no-${name}`)) {
        const owners = methods.filter((m) => Object.entries(m.flags).some(([k, sp]) => cliName(k, sp) === name)).map((m) => m.name);
        throw new SlimtuneError("E_ARG", `--${name} is a flag of --method ${owners.join(" / ")}; --method ${definition.name} does not use it`);
      }
    }
  }
}

function moveEntries(from: string, to: string): void {
  for (const f of fs.readdirSync(from)) fs.renameSync(`${from}/${f}`, `${to}/${f}`);
}

function report(s: TrainSummary & { files: Record<string, number> }, json: boolean, replaced = false): void {
  if (json) {
    printJson(s);
    return;
  }
  const lines = [
    `${s.method}: ${s.steps} steps${s.resumedFrom ? ` (resumed at ${s.resumedFrom})` : ""}, ${s.seconds.toFixed(1)} s, ${Math.round(s.tokensPerSecond)} tokens/s`,
    `trainable parameters ${s.trainableParameters.toLocaleString("en")} of ${s.totalParameters.toLocaleString("en")}`,
    `train loss ${s.firstLoss?.toFixed(4) ?? "-"} → ${s.lastLoss?.toFixed(4) ?? "-"}`,
  ];
  if (s.keptStep !== null) lines.push(`kept the weights of step ${s.keptStep} (--keep best: its held-out evaluation was the best)`);
  if (s.heldOutBefore && s.heldOutAfter) {
    lines.push(`held-out loss ${s.heldOutBefore.loss.toFixed(4)} → ${s.heldOutAfter.loss.toFixed(4)}${describeMetrics(s.heldOutAfter)}`);
  }
  lines.push(`peak memory ${s.peakRssMb.toFixed(0)} MiB`);
  const bytes = Object.values(s.files).reduce((a, b) => a + b, 0);
  if (bytes > 0) lines.push(`wrote ${Object.keys(s.files).join(", ")} (${bytes.toLocaleString("en")} bytes)`);
  if (s.skippedSteps > 0) lines.push(`skipped ${s.skippedSteps} step(s) with non-finite loss or gradients`);
  lines.push(
    s.stopped
      ? replaced
        ? "stopped; the folder given to --overwrite was left as it was (a run into a folder of other files cannot be resumed)"
        : `stopped; checkpoint in ${s.outDir}/checkpoint (resume with --resume)`
      : `saved to ${s.outDir}${replaced ? " (replacing what was there: --overwrite)" : ""}`,
  );
  process.stdout.write(`${lines.join("\n")}\n`);
}
