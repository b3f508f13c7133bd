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
import { type TrainHooks, type TrainOptions, type TrainSummary, train } from "../train/loop.js";
import type { TrainTask } from "../train/task.js";

export type JobTask =
  | { kind: "lm"; dataFile: string; batch: number; seq: number; heldOut: number; evalTokens: number }
  | { kind: "classify"; dataFile: string; evalFile?: string; batch: number; maxLen: number; numLabels?: number; evalExamples?: number };

export interface FinetuneJob {
  modelDir: string;
  method: string;
  /** The method's own flag values (defaults filled in). */
  methodOptions: FlagValues<MethodDefinition["flags"]>;
  adapter?: string;
  task: JobTask;
  train: TrainOptions;
}

export interface FinetuneResult {
  summary: TrainSummary;
  /** Files published into the run folder, with their sizes (empty when the run was stopped). */
  files: Record<string, number>;
}

export async function runFinetuneJob(job: FinetuneJob, hooks: TrainHooks & { onStart?: (method: string, totalSteps: number) => void } = {}): Promise<FinetuneResult> {
  const definition = findMethod(job.method);
  const base = loadBase(job.modelDir);
  const method = definition.create(base, job.methodOptions, { seed: job.train.seed, adapter: job.adapter });
  const tokenizer = await loadTokenizer(job.modelDir);
  const t = job.task;
  let task: TrainTask;
  if (t.kind === "lm") {
    task = lmTask(tokenizeFile(t.dataFile, tokenizer), { batch: t.batch, seq: t.seq, heldOut: t.heldOut, evalTokens: t.evalTokens });
  } else {
    const examples = tokenizeExamples(readLabelledTsv(t.dataFile).examples, tokenizer);
    const dev = t.evalFile ? readLabelledTsv(t.evalFile) : null;
    const numLabels = t.numLabels ?? Math.max(...examples.map((e) => e.label + 1), dev?.numLabels ?? 2);
    const head = findClassifierHead(job.adapter ? [job.adapter] : [job.modelDir]);
    task = classifyTask(method.config, examples, dev ? tokenizeExamples(dev.examples, tokenizer) : [], {
      batch: t.batch,
      maxLen: t.maxLen,
      numLabels,
      padId: method.config.eosTokenId ?? 0,
      seed: job.train.seed,
      head: head?.head,
      evalExamples: t.evalExamples,
    });
  }
  if (!(job.train.steps >= 1)) throw new SlimtuneError("E_ARG", `--steps ${job.train.steps} must be a positive integer`);
  hooks.onStart?.(method.name, job.train.steps);
  const summary = await train(method, task, job.train, hooks);
  let files: Record<string, number> = {};
  if (!summary.stopped) {
    const out = job.train.outDir;
    const written = publishInto(out, (tmp) => {
      method.save(tmp);
      task.saveExtra(tmp);
    });
    files = Object.fromEntries(written.map((f) => [f, fs.statSync(path.join(out, f)).size]));
  }
  return { summary, files };
}
