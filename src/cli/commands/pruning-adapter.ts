// `slimtune pruning-adapter`: task-oriented pruning (task-gradient importance by default), then a LoRA
// adapter trained on the pruned, frozen model; kept as an adapter folder or merged (--merge).

import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { parseTask, taskSource } from "../../prune/task-source.js";
import { runPruningAdapter } from "../../recipes/pruning-adapter/index.js";
import { exitOnSignal, floatArg, intArg, peakRssMb, printJson, requiredArg, runAction } from "../args.js";
import { createProgress, type Progress } from "../progress.js";
import { describeMetrics } from "./finetune.js";
import { qualityFromEvals } from "../../report/quality.js";
import { writeRunReport } from "../../report/run-report.js";
import { describePrune, floatModelArg, needsData, outArg, parsePruneFlags, pruneArgs } from "../prune-args.js";

export default defineCommand({
  meta: { name: "pruning-adapter", description: "Pruning-Adapter: prune by importance on the task, then train a LoRA adapter on the pruned frozen model" },
  args: {
    model: { type: "string", description: "Float model folder" },
    task: { type: "string", description: "lm or classify", default: "classify" },
    data: { type: "string", description: "Training data: a labelled TSV (classify) or a text file (lm); importance is measured on it too" },
    "eval-data": { type: "string", description: "classify: dev TSV scored after training (default: a held-out sample of --data)" },
    "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
    ...pruneArgs({ ratio: "0.3", importance: "task-gradient" }),
    samples: { type: "string", description: "Batches whose gradients give the importance", default: "16" },
    rank: { type: "string", description: "LoRA rank", default: "8" },
    alpha: { type: "string", description: "LoRA alpha", default: "16" },
    steps: { type: "string", description: "Adapter training steps", default: "300" },
    lr: { type: "string", description: "Adapter learning rate", default: "1e-3" },
    warmup: { type: "string", description: "Warm-up steps", default: "10" },
    batch: { type: "string", description: "Examples or sequences per step (and per importance batch)", default: "16" },
    seq: { type: "string", description: "lm: tokens per sequence", default: "256" },
    "max-len": { type: "string", description: "classify: tokens kept per example", default: "64" },
    "held-out": { type: "string", description: "Held-out fraction (lm: the tail; classify without --eval-data: a sample)", default: "0.05" },
    "eval-tokens": { type: "string", description: "lm: held-out tokens scored", default: "32768" },
    merge: { type: "boolean", description: "Merge the adapter into the pruned weights instead of writing adapter/" },
    seed: { type: "string", description: "Seed", default: "0" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    out: { type: "string", description: "Output folder (replaced atomically)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      exitOnSignal();
      const modelDir = requiredArg("model", args.model);
      const out = outArg(requiredArg("out", args.out), modelDir);
      const dataFile = requiredArg("data", args.data);
      const task = parseTask(args.task);
      if (args["eval-data"] && task !== "classify") throw new SlimtuneError("E_ARG", "--eval-data is for --task classify; with --task lm the tail of --data is held out");
      const seed = intArg("seed", args.seed, 0, 0);
      const threads = args.threads ? intArg("threads", args.threads, 1) : undefined;
      const batch = intArg("batch", args.batch, 16);
      const seq = intArg("seq", args.seq, 256, 2);
      const maxLen = intArg("max-len", args["max-len"], 64, 2);
      const numLabels = args["num-labels"] ? intArg("num-labels", args["num-labels"], 2, 2) : undefined;
      const prune = parsePruneFlags(args, { samples: intArg("samples", args.samples, 16), seed, threads });
      const model = floatModelArg(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      const source = needsData(prune.importance) ? await taskSource(model, tokenizer, { task, dataFile, batch, seq, maxLen, numLabels, headDirs: [modelDir], seed, threads, modelSource: modelDir }) : undefined;
      let progress: Progress | null = null;
      const r = await runPruningAdapter(
        model,
        tokenizer,
        {
          prune,
          source,
          data: { task, dataFile, evalFile: args["eval-data"], numLabels, batch, seq, maxLen, heldOut: floatArg("held-out", args["held-out"], 0.05), evalTokens: intArg("eval-tokens", args["eval-tokens"], 32768, 2), seed, modelSource: modelDir },
          adapter: { steps: intArg("steps", args.steps, 300), lr: floatArg("lr", args.lr, 1e-3), warmup: intArg("warmup", args.warmup, 10, 0), rank: intArg("rank", args.rank, 8), alpha: floatArg("alpha", args.alpha, 16), seed, threads },
          merge: Boolean(args.merge),
          outDir: out,
        },
        {
          onStage: (s) => process.stderr.write(`${s}\n`),
          onStep: (s, total) => {
            progress ??= createProgress("adapter", total);
            progress.update(s.step, { loss: s.loss.toFixed(4), "tok/s": Math.round(s.tokensPerSecond) });
          },
          onEval: (step, e) => {
            (progress as Progress | null)?.stop();
            process.stderr.write(`step ${step}: held-out loss ${e.loss.toFixed(4)}${describeMetrics(e)}\n`);
          },
        },
      );
      (progress as Progress | null)?.stop();
      const t = r.training;
      const summary = {
        model: modelDir,
        out,
        prune: r.prune.report,
        importance: prune.importance,
        training: { steps: t.steps, trainableParameters: t.trainableParameters, totalParameters: t.totalParameters, tokensPerSecond: t.tokensPerSecond, seconds: t.seconds, heldOutBefore: t.heldOutBefore, heldOutAfter: t.heldOutAfter, peakRssMb: t.peakRssMb },
        merged: Boolean(args.merge),
        files: r.files,
        seconds: r.seconds,
        peakRssMb: peakRssMb(),
      };
      await writeRunReport({ command: "pruning-adapter", out, options: args, summary, quality: qualityFromEvals(t.heldOutBefore, t.heldOutAfter, args["eval-data"] ?? "the held-out part of --data"), pruneLayers: r.prune.report.layers, parameters: r.prune.report.parametersAfter });
      if (args.json) {
        printJson(summary);
        return;
      }
      const lines = [`Pruning-Adapter → ${out} in ${r.seconds.total.toFixed(0)} s (prune ${r.seconds.prune.toFixed(0)} s, train ${r.seconds.train.toFixed(0)} s)`, ...describePrune(r.prune.report)];
      lines.push(`adapter: ${t.trainableParameters.toLocaleString("en")} trainable of ${t.totalParameters.toLocaleString("en")}, ${Math.round(t.tokensPerSecond)} tokens/s, peak memory ${t.peakRssMb.toFixed(0)} MiB`);
      if (t.heldOutBefore && t.heldOutAfter) lines.push(`held-out loss ${t.heldOutBefore.loss.toFixed(4)} → ${t.heldOutAfter.loss.toFixed(4)}${describeMetrics(t.heldOutAfter)}`);
      lines.push(args.merge ? "adapter merged into the pruned weights" : `adapter in ${out}/adapter`);
      process.stdout.write(`${lines.join("\n")}\n`);
    }),
});
