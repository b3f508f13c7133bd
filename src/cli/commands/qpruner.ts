// `slimtune qpruner`: prune → per-layer bits under a memory budget (importance start + Bayesian
// optimisation) → LoRA recovery → a GPTQ folder with a PEFT adapter (or merged with --merge).
// Progress on stderr shows the stage, each trial and the best loss so far.

import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { taskSource } from "../../prune/task-source.js";
import { checkQuantSpec } from "../../quant/spec.js";
import { runQPruner } from "../../recipes/qpruner/index.js";
import { exitOnSignal, floatArg, intArg, peakRssMb, printJson, requiredArg, runAction } from "../args.js";
import { describeAllocation, describeReportFiles, mixedPrecisionArgs, mixedProgress, parseBudget, parseMixedOptions, trialVersusFinal } from "../mixed-precision-args.js";
import { createProgress, type Progress } from "../progress.js";
import { describePrune, floatModelArg, outArg, parsePruneFlags, pruneArgs } from "../prune-args.js";
import { describeMetrics } from "./finetune.js";
import { qualityFromEvals } from "../../report/quality.js";
import { writeRunReport } from "../../report/run-report.js";

export default defineCommand({
  meta: { name: "qpruner", description: "QPruner: structured pruning, per-layer bits under a memory budget by Bayesian optimisation, LoRA recovery → GPTQ folder + PEFT adapter" },
  args: {
    model: { type: "string", description: "Float model folder" },
    ...mixedPrecisionArgs,
    "eval-data": { type: "string", description: "classify: dev TSV scored for accuracy after the final recovery (default: a held-out sample of --data)" },
    ...pruneArgs({ ratio: "0.2", importance: "taylor" }),
    "group-size": { type: "string", description: 'Quantization group size: 32, 64, 128 … or "channel" (pruned widths are kept multiples of it)', default: "32" },
    sym: { type: "boolean", description: "Symmetric RTN" },
    steps: { type: "string", description: "Final LoRA recovery steps", default: "200" },
    lr: { type: "string", description: "Final recovery learning rate", default: "1e-3" },
    warmup: { type: "string", description: "Final recovery warm-up steps", default: "10" },
    "eval-tokens": { type: "string", description: "lm: held-out tokens scored after the recovery", default: "32768" },
    merge: { type: "boolean", description: "Merge the adapter into the weights (each layer re-quantized at its bits) instead of writing adapter/" },
    threads: { type: "string", description: "ONNX Runtime threads for pruning and the final recovery (default: all cores)" },
    out: { type: "string", description: "Output folder (replaced atomically)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      exitOnSignal();
      const modelDir = requiredArg("model", args.model);
      const out = outArg(requiredArg("out", args.out), modelDir);
      const dataFile = requiredArg("data", args.data);
      const budget = parseBudget(args);
      if (!budget) throw new SlimtuneError("E_ARG", "qpruner needs a memory budget: --budget-mb X (everything stored) or --avg-bits B");
      const groupArg = args["group-size"];
      const groupSize: number | "channel" = groupArg === "channel" || groupArg === "-1" ? "channel" : Number(groupArg);
      if (groupSize !== "channel" && !(Number.isInteger(groupSize) && groupSize > 0)) throw new SlimtuneError("E_ARG", `--group-size "${groupArg}" must be a positive integer (32, 64, 128, …) or "channel"`);
      const base = { scheme: "rtn" as const, groupSize, symmetric: Boolean(args.sym) };
      checkQuantSpec({ ...base, bits: 4 });
      const mixed = parseMixedOptions(args, budget, base, { trials: 16 });
      const r = mixed.recovery;
      const model = floatModelArg(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      // Every pruned width must hold whole quantization groups (and GPTQ's 32-column words).
      const prune = parsePruneFlags(args, { samples: mixed.samples, seed: r.seed, threads: mixed.threads, minChannelMultiple: groupSize === "channel" ? 1 : groupSize });
      const source = await taskSource(model, tokenizer, { task: mixed.task, dataFile, batch: r.batch, seq: r.seq, maxLen: r.maxLen, numLabels: mixed.numLabels, headDirs: [modelDir], seed: r.seed, threads: mixed.threads, modelSource: modelDir });
      const evalFile = args["eval-data"];
      if (evalFile && mixed.task !== "classify") throw new SlimtuneError("E_ARG", "--eval-data is for --task classify; with --task lm the tail of --data is held out");
      let progress: Progress | null = null;
      const steps = intArg("steps", args.steps, 200);
      const result = await runQPruner(
        model,
        tokenizer,
        {
          prune,
          source,
          mixed: { ...mixed, recovery: r },
          data: {
            task: mixed.task,
            dataFile,
            evalFile,
            numLabels: mixed.numLabels,
            batch: r.batch,
            seq: r.seq,
            maxLen: r.maxLen,
            heldOut: r.heldOut,
            evalTokens: intArg("eval-tokens", args["eval-tokens"], 32768, 2),
            seed: r.seed,
            modelSource: modelDir,
          },
          recovery: { steps, lr: floatArg("lr", args.lr, 1e-3), warmup: intArg("warmup", args.warmup, 10, 0), rank: r.rank, alpha: r.alpha, seed: r.seed, threads: mixed.threads },
          merge: Boolean(args.merge),
          outDir: out,
        },
        {
          ...mixedProgress(),
          onStep: (s, total) => {
            progress ??= createProgress("recovery", total);
            progress.update(s.step, { loss: s.loss.toFixed(4) });
          },
          onEval: (step, e) => {
            (progress as Progress | null)?.stop();
            process.stderr.write(`recovery step ${step}: held-out loss ${e.loss.toFixed(4)}${describeMetrics(e)}\n`);
          },
        },
      );
      (progress as Progress | null)?.stop();
      const rec = result.recovery;
      const summary = {
        model: modelDir,
        out,
        prune: result.prune.report,
        allocation: { mode: result.mixed.mode, units: result.mixed.units, bits: result.mixed.allocation, bytes: result.mixed.bytes, avgBits: result.mixed.avgBits, trials: result.mixed.trials.length, bestTrialLoss: result.mixed.best?.loss ?? null, start: result.mixed.start },
        recovery: { steps: rec.steps, heldOutBefore: rec.heldOutBefore, heldOutAfter: rec.heldOutAfter, tokensPerSecond: rec.tokensPerSecond, merged: Boolean(args.merge) },
        files: result.files,
        modelBytes: result.modelBytes,
        seconds: result.seconds,
        peakRssMb: peakRssMb(),
      };
      await writeRunReport({ command: "qpruner", out, options: args, summary, quality: qualityFromEvals(rec.heldOutBefore, rec.heldOutAfter, evalFile ?? "the held-out part of --data"), pruneLayers: result.prune.report.layers, parameters: result.prune.report.parametersAfter });
      if (args.json) {
        printJson(summary);
        return;
      }
      const lines = [
        `QPruner → ${out} in ${result.seconds.total.toFixed(0)} s (prune ${result.seconds.prune.toFixed(0)} s, allocate ${result.seconds.allocate.toFixed(0)} s, recover ${result.seconds.recover.toFixed(0)} s)`,
        ...describePrune(result.prune.report),
        ...describeAllocation(result.mixed),
      ];
      if (rec.heldOutBefore && rec.heldOutAfter) {
        lines.push(`recovery: held-out loss ${rec.heldOutBefore.loss.toFixed(4)} → ${rec.heldOutAfter.loss.toFixed(4)}${describeMetrics(rec.heldOutAfter)}`);
        const evalTokens = intArg("eval-tokens", args["eval-tokens"], 32768, 2);
        const scoredOn = mixed.task === "classify" ? (evalFile ?? "the held-out examples") : `the first ${evalTokens.toLocaleString("en")} held-out tokens`;
        const why = trialVersusFinal(result.mixed, mixed, { loss: rec.heldOutAfter.loss, steps: rec.steps, lr: floatArg("lr", args.lr, 1e-3), scoredOn });
        if (why) lines.push(why);
      }
      lines.push(`model.safetensors ${result.modelBytes.toLocaleString("en")} bytes${args.merge ? " (adapter merged)" : `; adapter in ${out}/adapter`}; peak memory ${summary.peakRssMb.toFixed(0)} MiB`);
      const reports = ["mixed-precision.json", "pareto.json", "pareto.svg"].filter((f) => f in result.files);
      if (reports.length > 0) lines.push(describeReportFiles(out, reports));
      process.stdout.write(`${lines.join("\n")}\n`);
    }),
});
