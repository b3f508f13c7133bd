// `slimtune prune`: structured pruning of a float model folder by group importance on calibration or
// task data, or removal of what a FineGates run gated off (--from-gates); writes a smaller model
// folder with per-layer widths and prints parameters before/after and the widths of every layer.

import path from "node:path";
import { defineCommand } from "citty";
import { writeFileAtomic, replaceDirAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { loadFineGatesRun } from "../../formats/finegates-run.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { fineGatesFromRun } from "../../methods/finegates/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { pruneModel } from "../../prune/prune-model.js";
import type { PruneReport } from "../../prune/surgery.js";
import { taskSource } from "../../prune/task-source.js";
import { calibrationLoss } from "../../prune/gradients.js";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { loadersNote, qualityNote } from "../pruned-model-notes.js";
import { floatArg, intArg, printJson, requiredArg, runAction } from "../args.js";
import { createProgress, type Progress } from "../progress.js";
import { describePrune, floatModelArg, needsData, outArg, parsePruneFlags, pruneArgs, ratioArg } from "../prune-args.js";
import { writeRunReport } from "../../report/run-report.js";

export default defineCommand({
  meta: { name: "prune", description: "Structured pruning (heads, key/value groups, MLP channels) by importance on data, or of what a FineGates run gated off" },
  args: {
    model: { type: "string", description: "Float model folder (with --from-gates: default the run's base_model)" },
    data: { type: "string", description: "Calibration or task data: a text file (lm) or a text<TAB>label TSV (classify); not needed for l2/random" },
    task: { type: "string", description: "lm (next-token loss) or classify (loss through a classifier head: one saved beside --model, else a fitted linear probe)", default: "lm" },
    ...pruneArgs({ importance: "taylor" }),
    samples: { type: "string", description: "Calibration batches whose gradients are accumulated", default: "16" },
    batch: { type: "string", description: "Windows (lm) or examples (classify) per calibration batch", default: "8" },
    seq: { type: "string", description: "lm: tokens per window", default: "128" },
    "max-len": { type: "string", description: "classify: tokens kept per example", default: "128" },
    "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
    "from-gates": { type: "string", description: "A finetune --method finegates run folder: remove what its gates switched off (with --ratio: hardened to that target)" },
    seed: { type: "string", description: "Seed for calibration sampling and random importance", default: "0" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    out: { type: "string", description: "Output folder for the pruned model (replaced atomically)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const out = requiredArg("out", args.out);
      const started = Date.now();
      if (args["from-gates"]) {
        const run = loadFineGatesRun(args["from-gates"]);
        const modelDir = args.model ?? run.config.base_model;
        if (!modelDir) throw new SlimtuneError("E_ARG", `the FineGates run does not name its base model; pass --model with the folder it was trained on`, run.dir);
        const ratio = args.ratio !== undefined ? ratioArg(args.ratio) : undefined;
        const method = fineGatesFromRun(floatModelArg(modelDir), run, { targetSparsity: ratio });
        if (ratio !== undefined || run.config.hardened) method.hardenGates();
        const { model, report } = method.prune();
        replaceDirAtomic(outArg(out, modelDir), (tmp) => {
          model.save(tmp);
          writeFileAtomic(path.join(tmp, "prune.json"), `${JSON.stringify({ from_gates: path.resolve(run.dir), base_model: path.resolve(modelDir), target: ratio ?? run.config.target_sparsity, hardened: ratio !== undefined || run.config.hardened, ...report }, null, 1)}\n`);
        });
        await finish({ mode: "from-gates", run: run.dir, model: modelDir, out, seconds: (Date.now() - started) / 1000, report }, Boolean(args.json), model.config, { before: null, after: null, batches: 0 }, args);
        return;
      }
      const modelDir = requiredArg("model", args.model);
      const seed = intArg("seed", args.seed, 0, 0);
      const threads = args.threads ? intArg("threads", args.threads, 1) : undefined;
      const batch = intArg("batch", args.batch, 8);
      const opts = parsePruneFlags(args, { samples: intArg("samples", args.samples, 16), seed, threads });
      const { importance, taylor, schedule, ratio } = opts;
      const model = floatModelArg(modelDir);
      outArg(out, modelDir);
      const withData = needsData(importance);
      if (withData && !args.data) throw new SlimtuneError("E_ARG", `--importance ${importance} needs --data (a text file for --task lm, a labelled TSV for --task classify)`);
      const source = withData
        ? await taskSource(model, await loadTokenizer(modelDir), {
            task: args.task,
            dataFile: args.data!,
            batch,
            seq: intArg("seq", args.seq, 128, 2),
            maxLen: intArg("max-len", args["max-len"], 128, 2),
            numLabels: args["num-labels"] ? intArg("num-labels", args["num-labels"], 2, 2) : undefined,
            headDirs: [modelDir],
            seed,
            threads,
            modelSource: modelDir,
          })
        : undefined;
      let progress: Progress | null = null;
      const result = await pruneModel(model, {
        ...opts,
        source,
        onProgress: (done, total) => {
          progress ??= createProgress(`${importance} gradients`, total);
          progress.update(done);
        },
      });
      (progress as Progress | null)?.stop();
      // The same batches the importance came from, through the pruned model: what the cut cost there.
      const lossAfter = source ? await calibrationLoss(result.model, source, { samples: opts.samples, seed, threads }) : null;
      const record = {
        importance,
        ...(importance === "taylor" ? { taylor } : {}),
        task: source ? args.task : null,
        head: source && "headSource" in source ? source.headSource : null,
        ratio,
        schedule,
        layer_ratio: result.plan.layerRatio,
        pruned_layers: result.plan.prunedLayers,
        samples: result.importance.batches,
        calibration_loss: result.importance.loss,
        calibration_loss_after: lossAfter,
        seed,
      };
      replaceDirAtomic(out, (tmp) => {
        result.model.save(tmp);
        writeFileAtomic(path.join(tmp, "prune.json"), `${JSON.stringify({ base_model: path.resolve(modelDir), ...record, ...result.report }, null, 1)}\n`);
      });
      await finish({ mode: "importance", model: modelDir, out, seconds: (Date.now() - started) / 1000, ...record, report: result.report }, Boolean(args.json), result.model.config, {
        before: result.importance.loss,
        after: lossAfter,
        batches: result.importance.batches,
      }, args);
    }),
});

async function finish(
  summary: { mode: string; out: string; model: string; seconds: number; report: PruneReport } & Record<string, unknown>,
  json: boolean,
  config: LlamaConfig,
  loss: { before: number | null; after: number | null; batches: number },
  options: Record<string, unknown>,
): Promise<void> {
  const quality = loss.before !== null ? { metric: "calibration loss", before: loss.before, after: loss.after, higherIsBetter: false, on: `the ${loss.batches} calibration batches the importance came from` } : null;
  await writeRunReport({ command: "prune", out: summary.out, options, summary, quality, pruneLayers: summary.report.layers, parameters: summary.report.parametersAfter });
  if (json) {
    printJson({ ...summary, per_layer_widths: Boolean(config.layerShapes) });
    return;
  }
  const head = summary.mode === "from-gates" ? `removed what the FineGates run ${String(summary.run)} gated off` : `pruned by ${String(summary.importance)} importance (${String(summary.schedule)} schedule, ratio ${String(summary.ratio)})`;
  const lines = [`${head} → ${summary.out} in ${summary.seconds.toFixed(1)} s`, ...describePrune(summary.report), qualityNote(loss, summary.out, summary.model), `the pruned model has ${loadersNote(config)}`];
  process.stdout.write(`${lines.join("\n")}\n`);
}
