// One fine-tuning run described by plain data (so it can cross into a worker thread): load the
// base, create the method from its definition, read the task's data, train, and publish the
// result beside the run's checkpoint and metrics. `slimtune finetune` runs it in a worker.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { publishInto } from "../core/publish.js";
import { tokenizeExamples } from "../data/examples.js";
import { tokenizeFile } from "../data/text-file.js";
import { readLabelledTsv } from "../data/tsv.js";
import { findClassifierHead } from "../formats/classifier-head.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import type { FlagValues } from "../methods/flags.js";
import type { MethodDefinition } from "../methods/method.js";
import { findMethod } from "../methods/registry.js";
import { loadBase } from "../models/load.js";
import { classifyTask } from "../train/classify-task.js";
import { lmTask } from "../train/lm-task.js";
import { sftTask, stepsPerEpoch } from "../train/sft-task.js";
import { type SftDataOptions, type SftDataSummary, describeSftData, loadSftData } from "./sft-data.js";
import { type TrainHooks, type TrainOptions, type TrainSummary, train as trainLoop } from "../train/loop.js";
import { planCheckpointing } from "../train/memory.js";
import type { TuningMethod } from "../methods/method.js";
import { AdamW } from "../train/adamw.js";
import type { TrainTask } from "../train/task.js";

export type JobTask = (
  | { kind: "lm"; dataFile: string; evalFile?: string; batch: number; seq: number; heldOut: number; evalTokens: number }
  | { kind: "classify"; dataFile: string; evalFile?: string; batch: number; maxLen: number; numLabels?: number; evalExamples?: number }
  | ({ kind: "sft"; batch: number; pack: boolean; evalExamples?: number } & SftDataOptions)
) & {
  /** Sequences longer than the model's max_position_embeddings are refused unless this is set. */
  allowLongContext?: boolean;
};

export interface FinetuneJob {
  modelDir: string;
  method: string;
  /** The method's own flag values (defaults filled in). */
  methodOptions: FlagValues<MethodDefinition["flags"]>;
  adapter?: string;
  task: JobTask;
  train: TrainOptions;
  /** Train for this many passes over the training data instead of train.steps. */
  epochs?: number;
}

export interface FinetuneResult {
  summary: TrainSummary;
  /** What the method's own first phase reported (ReALLM's block-wise fit), when it has one. */
  prepared?: Record<string, unknown>;
  /** What the instruction data became (records, examples, cut and dropped), for sft runs. */
  data?: SftDataSummary;
  /** Files published into the run folder, with their sizes (empty when the run was stopped). */
  files: Record<string, number>;
}

export interface JobHooks extends TrainHooks {
  onStart?: (method: string, totalSteps: number) => void;
  /** A line about the method's own first phase. */
  onLog?: (message: string) => void;
}

export async function runFinetuneJob(job: FinetuneJob, hooks: JobHooks = {}): Promise<FinetuneResult> {
  const definition = findMethod(job.method);
  const base = loadBase(job.modelDir);
  const method = definition.create(base, job.methodOptions, { seed: job.train.seed, adapter: job.adapter });
  const tokenizer = await loadTokenizer(job.modelDir);
  const t = job.task;
  checkContext(t.kind === "classify" ? t.maxLen : t.seq, t.kind === "classify" ? "--max-len" : "--seq", method.config.maxPositionEmbeddings, t.allowLongContext ?? false);
  let task: TrainTask;
  let textTokens: Int32Array;
  let data: SftDataSummary | undefined;
  let epochSteps: number;
  const accumulate = job.train.accumulate;
  if (t.kind === "sft") {
    const sft = loadSftData(job.modelDir, tokenizer, t);
    data = sft.summary;
    for (const line of describeSftData(sft.summary, t.seq)) hooks.onLog?.(line);
    textTokens = Int32Array.from(sft.train.flatMap((e) => Array.from(e.ids)));
    task = sftTask(sft.train, sft.heldOut, { batch: t.batch, seq: t.seq, pack: t.pack, padId: method.config.eosTokenId ?? 0, evalExamples: t.evalExamples });
    epochSteps = stepsPerEpoch(sft.train, { batch: t.batch, seq: t.seq, pack: t.pack, accumulate });
  } else if (t.kind === "lm") {
    textTokens = tokenizeFile(t.dataFile, tokenizer);
    const heldOutTokens = t.evalFile ? tokenizeFile(t.evalFile, tokenizer) : undefined;
    task = lmTask(textTokens, { batch: t.batch, seq: t.seq, heldOut: t.heldOut, evalTokens: t.evalTokens, ...(heldOutTokens ? { heldOutTokens } : {}) });
    epochSteps = Math.ceil((textTokens.length * (heldOutTokens ? 1 : 1 - t.heldOut)) / (t.batch * t.seq * accumulate));
  } else {
    const labels = t.numLabels ? { numLabels: t.numLabels } : {};
    const examples = tokenizeExamples(readLabelledTsv(t.dataFile, labels).examples, tokenizer);
    textTokens = Int32Array.from(examples.flatMap((e) => Array.from(e.ids)));
    const dev = t.evalFile ? readLabelledTsv(t.evalFile, labels) : null;
    // A loop, not Math.max(...spread): a spread of 130,000 labels overflows the stack.
    const numLabels = t.numLabels ?? examples.reduce((m, e) => Math.max(m, e.label + 1), dev?.numLabels ?? 2);
    const head = findClassifierHead(job.adapter ? [job.adapter] : [job.modelDir], method.config);
    task = classifyTask(method.config, examples, dev ? tokenizeExamples(dev.examples, tokenizer) : [], {
      batch: t.batch,
      maxLen: t.maxLen,
      numLabels,
      padId: method.config.eosTokenId ?? 0,
      seed: job.train.seed,
      head: head?.head,
      evalExamples: t.evalExamples,
    });
    epochSteps = Math.ceil(examples.length / (t.batch * accumulate));
  }
  if (job.epochs !== undefined) {
    if (!(Number.isInteger(job.epochs) && job.epochs >= 1)) throw new SlimtuneError("E_ARG", `--epochs ${job.epochs} must be a positive integer`);
    job = { ...job, train: { ...job.train, steps: Math.max(1, epochSteps) * job.epochs } };
    hooks.onLog?.(`${job.epochs} epoch(s) of about ${epochSteps} steps each: ${job.train.steps} steps`);
  }
  if (!(job.train.steps >= 1)) throw new SlimtuneError("E_ARG", `--steps ${job.train.steps} must be a positive integer`);
  const train = { ...job.train, checkpointActivations: fitMemory(method, task, t, job.train, hooks) };
  // A method's own first phase (ReALLM's block-wise fit), skipped when resuming a run.
  const prepared =
    method.prepare && !job.train.resume
      ? await method.prepare({
          tokens: textTokens,
          seq: t.kind === "classify" ? t.maxLen : t.seq,
          seed: job.train.seed,
          threads: job.train.threads,
          optimizer: (params) => new AdamW(params),
          log: (m) => hooks.onLog?.(m),
        })
      : null;
  hooks.onStart?.(method.name, job.train.steps);
  const summary = await trainLoop(method, task, train, hooks);
  let files: Record<string, number> = {};
  if (!summary.stopped) {
    const out = job.train.outDir;
    const written = publishInto(out, (tmp) => {
      method.save(tmp);
      task.saveExtra(tmp);
    });
    files = Object.fromEntries(written.map((f) => [f, fs.statSync(path.join(out, f)).size]));
  }
  return { summary, files, ...(prepared ? { prepared } : {}), ...(data ? { data } : {}) };
}

function checkContext(length: number, flag: string, positions: number, allowed: boolean): void {
  if (length > positions && !allowed) {
    throw new SlimtuneError(
      "E_ARG",
      `${flag} ${length} is longer than the model's max_position_embeddings (${positions}); use ${flag} ${positions} or less, or --allow-long-context if the model's RoPE scaling makes longer sequences meaningful`,
    );
  }
}

/**
 * Checks the run against free memory before it starts; when it fits only with activation
 * checkpointing, that is turned on (and said) rather than refusing the run.
 */
function fitMemory(method: TuningMethod, task: TrainTask, t: JobTask, opts: TrainOptions, hooks: JobHooks): boolean {
  const trainableParameters = [...method.trainable.values(), ...task.extraTrainable.values()].reduce((n, p) => n + p.data.length, 0);
  const base = {
    config: method.config,
    totalParameters: method.totalParameters,
    trainableParameters,
    batch: t.batch,
    seq: t.kind === "classify" ? t.maxLen : t.seq,
    ...(t.kind === "classify" ? { outputsPerToken: Number(task.fixed.num_labels ?? 2) } : {}),
  };
  const plan = planCheckpointing(base, opts.checkpointActivations ?? false);
  if (plan.note) hooks.onLog?.(plan.note);
  return plan.checkpointActivations;
}
