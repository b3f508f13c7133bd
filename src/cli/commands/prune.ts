// `slimtune prune`: structured pruning of a float model folder by group importance on calibration or
// task data, or removal of what a FineGates run gated off (--from-gates); writes a smaller model
// folder with per-layer widths and prints parameters before/after and the widths of every layer.

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { writeFileAtomic, replaceDirAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { loadFineGatesRun } from "../../formats/finegates-run.js";
import { isQuantizedFolder } from "../../formats/quantized/index.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { fineGatesFromRun } from "../../methods/finegates/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { type ImportanceKind, type TaylorVariant, importanceKinds, taylorVariants } from "../../prune/importance.js";
import { type Schedule, defaultPlanOptions, schedules } from "../../prune/plan.js";
import { pruneModel } from "../../prune/prune-model.js";
import type { PruneReport } from "../../prune/surgery.js";
import { taskSource } from "../../prune/task-source.js";
import { floatArg, intArg, printJson, requiredArg, runAction } from "../args.js";
import { createProgress, type Progress } from "../progress.js";

export function oneOf<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new SlimtuneError("E_ARG", `--${flag} "${value}" is unknown; choose ${choices.join(", ")}`);
  return value as T;
}

/** --ratio as given: strictly between 0 and 1. */
export function ratioArg(value: string | undefined): number {
  const r = Number(value);
  if (value === undefined || value === "" || !(r > 0 && r < 1)) {
    throw new SlimtuneError("E_ARG", `--ratio "${value ?? ""}" must be a number strictly between 0 and 1, e.g. --ratio 0.2 to remove 20 % of the decoder blocks' parameters`);
  }
  return r;
}

/** A float model folder for --model, with the errors a user can act on. */
export function floatModelArg(dir: string): LlamaModel {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", `--model "${dir}" is not a folder; pass a Hugging Face model folder`);
  if (isQuantizedFolder(dir)) throw new SlimtuneError("E_ARG", `--model "${dir}" is quantized; pruning needs the float model — pass the folder it was quantized from`);
  return LlamaModel.load(dir);
}

export function outArg(out: string, modelDir: string): string {
  if (path.resolve(out) === path.resolve(modelDir)) throw new SlimtuneError("E_ARG", `--out "${out}" is the --model folder; write the pruned model to a new folder`);
  return out;
}

/** The per-layer widths as "heads/kv/channels" lines and the parameter totals. */
export function describePrune(report: PruneReport): string[] {
  const pct = (a: number, b: number) => `${((100 * (b - a)) / b).toFixed(1)} %`;
  return [
    `parameters ${report.parametersBefore.toLocaleString("en")} → ${report.parametersAfter.toLocaleString("en")} (−${pct(report.parametersAfter, report.parametersBefore)}; decoder blocks ${report.blockParametersBefore.toLocaleString("en")} → ${report.blockParametersAfter.toLocaleString("en")}, −${pct(report.blockParametersAfter, report.blockParametersBefore)})`,
    ...report.layers.map((l, i) => `  layer ${i}: heads ${l.heads[0]} → ${l.heads[1]}, kv heads ${l.kvHeads[0]} → ${l.kvHeads[1]}, MLP channels ${l.channels[0]} → ${l.channels[1]}`),
  ];
}

export default defineCommand({
  meta: { name: "prune", description: "Structured pruning (heads, key/value groups, MLP channels) by importance on data, or of what a FineGates run gated off" },
  args: {
    model: { type: "string", description: "Float model folder (with --from-gates: default the run's base_model)" },
    data: { type: "string", description: "Calibration or task data: a text file (lm) or a text<TAB>label TSV (classify); not needed for l2/random" },
    task: { type: "string", description: "lm (next-token loss) or classify (loss through a classifier head: one saved beside --model, else a fitted linear probe)", default: "lm" },
    ratio: { type: "string", description: "Fraction of the decoder blocks' linear parameters to remove, in (0, 1); with --from-gates, the hardening target" },
    importance: { type: "string", description: `Group importance: ${importanceKinds.join(", ")}`, default: "taylor" },
    taylor: { type: "string", description: "taylor: element (Σ|w·g|) or vector (|Σ w·g| per slice), LLM-Pruner's two first-order variants", default: "element" },
    schedule: { type: "string", description: "layer (the same ratio in every pruned layer) or global (one ranking across layers)", default: "layer" },
    "keep-first": { type: "string", description: "Leave the first N layers whole", default: "0" },
    "keep-last": { type: "string", description: "Leave the last N layers whole", default: "0" },
    samples: { type: "string", description: "Calibration batches whose gradients are accumulated", default: "16" },
    batch: { type: "string", description: "Windows (lm) or examples (classify) per calibration batch", default: "8" },
    seq: { type: "string", description: "lm: tokens per window", default: "128" },
    "max-len": { type: "string", description: "classify: tokens kept per example", default: "128" },
    "num-labels": { type: "string", description: "classify: number of classes (default: largest label + 1)" },
    "channel-multiple": { type: "string", description: "Kept MLP channels per layer are a multiple of this (32 keeps every GPTQ width packable; 1: exact)", default: String(defaultPlanOptions.channelMultiple) },
    "allow-empty-layers": { type: "boolean", description: "Allow a layer to lose every head or every channel" },
    "from-gates": { type: "string", description: "A finetune --method finegates run folder: remove what its gates switched off (hardened to --ratio if given)" },
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
        finish({ mode: "from-gates", run: run.dir, model: modelDir, out, seconds: (Date.now() - started) / 1000, report }, Boolean(args.json));
        return;
      }
      const modelDir = requiredArg("model", args.model);
      const ratio = ratioArg(args.ratio);
      const importance = oneOf<ImportanceKind>("importance", args.importance, importanceKinds);
      const taylor = oneOf<TaylorVariant>("taylor", args.taylor, taylorVariants);
      const schedule = oneOf<Schedule>("schedule", args.schedule, schedules);
      const seed = intArg("seed", args.seed, 0, 0);
      const threads = args.threads ? intArg("threads", args.threads, 1) : undefined;
      const samples = intArg("samples", args.samples, 16);
      const batch = intArg("batch", args.batch, 8);
      const model = floatModelArg(modelDir);
      outArg(out, modelDir);
      const needsData = importance === "taylor" || importance === "task-gradient";
      if (needsData && !args.data) throw new SlimtuneError("E_ARG", `--importance ${importance} needs --data (a text file for --task lm, a labelled TSV for --task classify)`);
      const source = needsData
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
          })
        : undefined;
      let progress: Progress | null = null;
      const result = await pruneModel(model, {
        ratio,
        schedule,
        keepFirst: intArg("keep-first", args["keep-first"], 0, 0),
        keepLast: intArg("keep-last", args["keep-last"], 0, 0),
        channelMultiple: intArg("channel-multiple", args["channel-multiple"], defaultPlanOptions.channelMultiple),
        allowEmptyLayers: Boolean(args["allow-empty-layers"]),
        importance,
        taylor,
        source,
        samples,
        seed,
        threads,
        onProgress: (done, total) => {
          progress ??= createProgress(`${importance} gradients`, total);
          progress.update(done);
        },
      });
      (progress as Progress | null)?.stop();
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
        seed,
      };
      replaceDirAtomic(out, (tmp) => {
        result.model.save(tmp);
        writeFileAtomic(path.join(tmp, "prune.json"), `${JSON.stringify({ base_model: path.resolve(modelDir), ...record, ...result.report }, null, 1)}\n`);
      });
      finish({ mode: "importance", model: modelDir, out, seconds: (Date.now() - started) / 1000, ...record, report: result.report }, Boolean(args.json));
    }),
});

function finish(summary: { mode: string; out: string; seconds: number; report: PruneReport } & Record<string, unknown>, json: boolean): void {
  if (json) {
    printJson(summary);
    return;
  }
  const head = summary.mode === "from-gates" ? `removed what the FineGates run ${String(summary.run)} gated off` : `pruned by ${String(summary.importance)} importance (${String(summary.schedule)} schedule, ratio ${String(summary.ratio)})`;
  process.stdout.write(`${[`${head} → ${summary.out} in ${summary.seconds.toFixed(1)} s`, ...describePrune(summary.report)].join("\n")}\n`);
}
