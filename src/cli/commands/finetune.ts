// `slimtune finetune`: trains a model on a text file with one of the tuning methods.

import { defineCommand } from "citty";
import { SlimtuneError } from "../../errors.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { fullFineTuning } from "../../methods/full/index.js";
import type { TuningMethod } from "../../methods/method.js";
import { LlamaModel } from "../../models/llama/model.js";
import { tokenizeFile } from "../../data/text-file.js";
import { defaultTrainOptions, train, type TrainOptions, type TrainSummary } from "../../train/loop.js";
import { publishInto } from "../../util/publish.js";
import { floatArg, intArg, printJson, requiredArg, runAction } from "../args.js";
import { createProgress, type Progress } from "../progress.js";

const methods: Record<string, (model: LlamaModel) => TuningMethod> = {
  full: fullFineTuning,
};

const d = defaultTrainOptions;

export default defineCommand({
  meta: { name: "finetune", description: "Fine-tune a model on a text file; writes the result to --out, resumable with --resume" },
  args: {
    method: { type: "string", description: `Tuning method: ${Object.keys(methods).join(", ")}`, default: "full" },
    model: { type: "string", description: "Hugging Face model folder" },
    data: { type: "string", description: "UTF-8 text file to train on" },
    out: { type: "string", description: "Output folder: the tuned model, checkpoint/ and metrics.jsonl" },
    steps: { type: "string", description: "Optimizer steps", default: "100" },
    batch: { type: "string", description: "Sequences per micro-batch", default: String(d.batch) },
    seq: { type: "string", description: "Tokens per sequence", default: String(d.seq) },
    lr: { type: "string", description: "Peak learning rate", default: String(d.lr) },
    warmup: { type: "string", description: "Linear warm-up steps", default: String(d.warmupSteps) },
    "min-lr-ratio": { type: "string", description: "Final learning rate as a fraction of the peak (cosine decay)", default: String(d.minLrRatio) },
    "weight-decay": { type: "string", description: "AdamW decoupled weight decay", default: String(d.weightDecay) },
    clip: { type: "string", description: "Max global gradient norm (0: off)", default: String(d.clip) },
    accumulate: { type: "string", description: "Micro-batches per optimizer step", default: String(d.accumulate) },
    seed: { type: "string", description: "Seed for batch sampling", default: String(d.seed) },
    "held-out": { type: "string", description: "Fraction of the data (its tail) held out for eval", default: String(d.heldOut) },
    "eval-every": { type: "string", description: "Held-out eval every N steps (0: only before and after)", default: String(d.evalEvery) },
    "eval-tokens": { type: "string", description: "Held-out tokens scored per eval", default: String(d.evalTokens) },
    "checkpoint-every": { type: "string", description: "Checkpoint every N steps", default: String(d.checkpointEvery) },
    resume: { type: "boolean", description: "Continue from --out/checkpoint" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    json: { type: "boolean", description: "Print the summary as one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const makeMethod = methods[args.method];
      if (!makeMethod) {
        throw new SlimtuneError("E_ARG", `unknown --method "${args.method}"; choose one of: ${Object.keys(methods).join(", ")}`);
      }
      const modelDir = requiredArg("model", args.model);
      const dataFile = requiredArg("data", args.data);
      const opts: TrainOptions = {
        outDir: requiredArg("out", args.out),
        steps: intArg("steps", args.steps, 100),
        batch: intArg("batch", args.batch, d.batch),
        seq: intArg("seq", args.seq, d.seq, 2),
        lr: floatArg("lr", args.lr, d.lr),
        warmupSteps: intArg("warmup", args.warmup, d.warmupSteps, 0),
        minLrRatio: floatArg("min-lr-ratio", args["min-lr-ratio"], d.minLrRatio),
        weightDecay: floatArg("weight-decay", args["weight-decay"], d.weightDecay),
        clip: floatArg("clip", args.clip, d.clip),
        accumulate: intArg("accumulate", args.accumulate, d.accumulate),
        seed: intArg("seed", args.seed, d.seed, 0),
        heldOut: floatArg("held-out", args["held-out"], d.heldOut),
        evalEvery: intArg("eval-every", args["eval-every"], d.evalEvery, 0),
        evalTokens: intArg("eval-tokens", args["eval-tokens"], d.evalTokens, 2),
        checkpointEvery: intArg("checkpoint-every", args["checkpoint-every"], d.checkpointEvery, 0),
        resume: Boolean(args.resume),
        threads: args.threads ? intArg("threads", args.threads, 0) : undefined,
      };
      const model = LlamaModel.load(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      const tokens = tokenizeFile(dataFile, tokenizer);
      const method = makeMethod(model);
      const summary = await runTraining(method, tokens, opts);
      if (!summary.stopped) publishInto(opts.outDir, (tmp) => method.save(tmp));
      report(summary, Boolean(args.json));
      if (summary.stopped) process.exitCode = 130;
    }),
});

/** Trains with a progress bar; Ctrl-C (SIGINT/SIGTERM) checkpoints and stops cleanly. */
export async function runTraining(method: TuningMethod, tokens: Int32Array, opts: TrainOptions): Promise<TrainSummary> {
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
    return await train(method, tokens, opts, {
      onStep: (r, total) => {
        progress ??= createProgress(`${method.name} fine-tuning`, total);
        progress.update(r.step, { loss: r.loss.toFixed(4), "tok/s": Math.round(r.tokensPerSecond) });
      },
      onEval: (step, r) => process.stderr.write(`${progress ? "\n" : ""}step ${step}: held-out loss ${r.meanNll.toFixed(4)}, perplexity ${r.perplexity.toFixed(2)}\n`),
      shouldStop: () => stopRequested,
    });
  } finally {
    (progress as Progress | null)?.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function report(s: TrainSummary, json: boolean): void {
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
    lines.push(`held-out perplexity ${s.heldOutBefore.perplexity.toFixed(2)} → ${s.heldOutAfter.perplexity.toFixed(2)}`);
  }
  lines.push(s.stopped ? `stopped; checkpoint in ${s.outDir}/checkpoint (resume with --resume)` : `saved to ${s.outDir}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
