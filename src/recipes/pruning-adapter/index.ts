// Pruning-Adapter (Wang, Yang, Sun 2023): prune the frozen model by importance measured on the target
// task (task-gradient importance by default), then train a small LoRA adapter on the pruned model,
// so that fine-tuning and serving both run on the smaller model. The result is the pruned float
// folder with a PEFT adapter beside it, or the adapter merged into it.

import fs from "node:fs";
import path from "node:path";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { tempSiblingPrefix } from "../../core/output.js";
import type { TextTokenizer } from "../../formats/tokenizer.js";
import { loraForDenseModel, mergeLora } from "../../methods/lora/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import type { LossSource } from "../../prune/gradients.js";
import { type PruneOptions, type PruneResult, pruneModel } from "../../prune/prune-model.js";
import { type StepReport, type TrainSummary, train } from "../../train/loop.js";
import type { TaskEval } from "../../train/task.js";
import type { RecoveryOptions } from "../qpruner/index.js";
import { folderSizes } from "../folder-sizes.js";
import { keepTrainingMetrics, readTrainingMetrics } from "../kept-metrics.js";
import { type TaskDataOptions, loadTaskData } from "../task-data.js";

export interface PruningAdapterOptions {
  prune: Omit<PruneOptions, "source" | "onProgress">;
  /** The task loss importance is measured on. */
  source?: LossSource;
  data: TaskDataOptions;
  adapter: RecoveryOptions;
  merge: boolean;
  outDir: string;
}

export interface PruningAdapterHooks {
  onStage?: (stage: string) => void;
  onStep?: (r: StepReport, total: number) => void;
  onEval?: (step: number, r: TaskEval) => void;
}

export interface PruningAdapterResult {
  prune: PruneResult;
  training: TrainSummary;
  files: Record<string, number>;
  seconds: { prune: number; train: number; total: number };
}

export async function runPruningAdapter(model: LlamaModel, tokenizer: TextTokenizer, o: PruningAdapterOptions, hooks: PruningAdapterHooks = {}): Promise<PruningAdapterResult> {
  const t0 = performance.now();
  hooks.onStage?.(`[1/2] prune ${(100 * o.prune.ratio).toFixed(0)} % by ${o.prune.importance} importance on the task`);
  const pruned = await pruneModel(model, { ...o.prune, source: o.source });
  const tPrune = performance.now();
  hooks.onStage?.(`[2/2] LoRA r ${o.adapter.rank} on the pruned, frozen model: ${o.adapter.steps} steps`);
  const method = loraForDenseModel(pruned.model, { rank: o.adapter.rank, alpha: o.adapter.alpha, seed: o.adapter.seed }, path.resolve(o.outDir));
  const task = loadTaskData(tokenizer, o.data).task(pruned.model.config);
  const work = fs.mkdtempSync(tempSiblingPrefix(o.outDir, "pa"));
  const cleanup = () => fs.rmSync(work, { recursive: true, force: true });
  process.once("exit", cleanup);
  let training: TrainSummary;
  let metrics: string | null = null;
  try {
    training = await train(
      method,
      task,
      {
        steps: o.adapter.steps,
        lr: o.adapter.lr,
        warmupSteps: o.adapter.warmup,
        minLrRatio: 0.1,
        weightDecay: 0,
        clip: 1,
        accumulate: 1,
        seed: o.adapter.seed,
        evalEvery: 0,
        checkpointEvery: 0,
        outDir: work,
        resume: false,
        threads: o.adapter.threads,
      },
      { onStep: hooks.onStep, onEval: hooks.onEval },
    );
    metrics = readTrainingMetrics(work);
  } finally {
    process.off("exit", cleanup);
    cleanup();
  }
  const tTrain = performance.now();
  const report = {
    base_model: model.sourceDir ? path.resolve(model.sourceDir) : null,
    prune: { importance: o.prune.importance, ratio: o.prune.ratio, schedule: o.prune.schedule, keep_first: o.prune.keepFirst, keep_last: o.prune.keepLast, ...pruned.report },
    adapter: { kind: "lora", rank: o.adapter.rank, alpha: o.adapter.alpha, steps: training.steps, merged: o.merge, held_out_before: training.heldOutBefore, held_out_after: training.heldOutAfter },
  };
  replaceDirAtomic(o.outDir, (tmp) => {
    if (o.merge) {
      const weights = new Map([...pruned.model.weights].map(([k, w]) => [k, { data: Float32Array.from(w.data), shape: w.shape }]));
      mergeLora(weights, { scale: method.scale, tensors: method.trainable });
      new LlamaModel(pruned.model.config, weights, pruned.model.sourceDir).save(tmp);
      task.saveExtra(tmp);
    } else {
      pruned.model.save(tmp);
      method.save(path.join(tmp, "adapter"));
      task.saveExtra(path.join(tmp, "adapter"));
    }
    writeFileAtomic(path.join(tmp, "pruning-adapter.json"), `${JSON.stringify(report, null, 1)}\n`);
    keepTrainingMetrics(tmp, metrics);
  });
  const files = folderSizes(o.outDir);
  return { prune: pruned, training, files, seconds: { prune: (tPrune - t0) / 1000, train: (tTrain - tPrune) / 1000, total: (performance.now() - t0) / 1000 } };
}
