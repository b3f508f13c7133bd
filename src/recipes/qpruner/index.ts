// QPruner (Zhou et al. 2025), end to end: structured pruning by importance on the task → per-layer
// bit widths under a memory budget (importance start, then Bayesian optimisation of the held-out
// loss after a short recovery) → LoRA recovery on the pruned, mixed-precision model → a GPTQ folder
// (per-layer widths and per-layer bits) with a PEFT adapter beside it, or the adapter merged.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../../core/errors.js";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { tempSiblingPrefix } from "../../core/output.js";
import { saveQuantizedFolder } from "../../formats/quantized/index.js";
import type { TextTokenizer } from "../../formats/tokenizer.js";
import { loraMethod, mergeLora } from "../../methods/lora/index.js";
import { quantizedLoraBase } from "../../methods/qlora/index.js";
import type { LlamaModel } from "../../models/llama/model.js";
import type { LossSource } from "../../prune/gradients.js";
import { probeHead } from "../../prune/classify-probe.js";
import { type PruneOptions, type PruneResult, pruneModel } from "../../prune/prune-model.js";
import { allocationPlan } from "../../quant/budget.js";
import { dequantize, quantizeLinear } from "../../quant/kinds/index.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import { sizeReport } from "../../quant/size.js";
import type { QuantizedLinear, QuantizedModel } from "../../quant/types.js";
import { type StepReport, type TrainSummary, train } from "../../train/loop.js";
import type { TaskEval } from "../../train/task.js";
import { type MixedPrecisionOptions, type MixedPrecisionResult, allocateBits, mixedPrecisionJson, writeMixedPrecisionReport } from "../mixed-precision/index.js";
import type { RecoverySettings } from "../mixed-precision/trial.js";
import { folderSizes } from "../folder-sizes.js";
import { keepTrainingMetrics, readTrainingMetrics } from "../kept-metrics.js";
import { type TaskDataOptions, loadTaskData } from "../task-data.js";

export interface RecoveryOptions {
  steps: number;
  lr: number;
  warmup: number;
  rank: number;
  alpha: number;
  seed: number;
  threads?: number;
}

export interface QPrunerOptions {
  prune: Omit<PruneOptions, "source" | "onProgress">;
  /** The task data importance is measured on (pruning and the bit allocation). */
  source?: LossSource;
  mixed: Omit<MixedPrecisionOptions, "source" | "trial" | "onStage" | "onTrial"> & { recovery: RecoverySettings };
  /** The final recovery's data (and the trials', without evalFile). */
  data: TaskDataOptions;
  recovery: RecoveryOptions;
  /** Fold the adapter into the weights and re-quantize each layer at its own bits. */
  merge: boolean;
  outDir: string;
}

export interface QPrunerHooks {
  onStage?: (stage: string) => void;
  onTrial?: MixedPrecisionOptions["onTrial"];
  onStep?: (r: StepReport, total: number) => void;
  onEval?: (step: number, r: TaskEval) => void;
}

export interface QPrunerResult {
  prune: PruneResult;
  mixed: MixedPrecisionResult;
  recovery: TrainSummary;
  /** Bytes of what was written, by file (adapter files under "adapter/"). */
  files: Record<string, number>;
  modelBytes: number;
  seconds: { prune: number; allocate: number; recover: number; total: number };
}

/** W ← Q(Ŵ + scale·B·A) for every adapted layer, each re-quantized with its own spec. */
export function mergeIntoQuantized(qm: QuantizedModel, scale: number, tensors: ReadonlyMap<string, { data: Float32Array; shape: number[] }>): QuantizedModel {
  const dense = new Map([...qm.linears].map(([p, q]) => [`${p}.weight`, { data: dequantize(q), shape: [q.outFeatures, q.inFeatures] }]));
  mergeLora(dense, { scale, tensors });
  const linears = new Map<string, QuantizedLinear>();
  for (const [p, q] of qm.linears) {
    // QPruner's allocations are grid kinds (RTN at 2/3/4/8 bits); ReALLM layers cannot be re-quantized here.
    if (q.kind === "reallm") throw new SlimtuneError("E_ARG", `layer ${p} is ReALLM; merging a LoRA adapter re-quantizes on a grid, so merge into a GPTQ or NF4 model`);
    const merged = quantizeLinear(dense.get(`${p}.weight`)!.data, q.outFeatures, q.inFeatures, q.spec, { layer: p });
    merged.bias = q.bias;
    linears.set(p, merged);
  }
  return { ...qm, linears };
}

export async function runQPruner(model: LlamaModel, tokenizer: TextTokenizer, o: QPrunerOptions, hooks: QPrunerHooks = {}): Promise<QPrunerResult> {
  const t0 = performance.now();
  // Work folder beside the output: the pruned float model the trial workers load.
  const work = fs.mkdtempSync(tempSiblingPrefix(o.outDir, "qpruner"));
  // Also on process.exit (the CLI exits on Ctrl-C), so no work folder is left behind.
  const cleanup = () => fs.rmSync(work, { recursive: true, force: true });
  process.once("exit", cleanup);
  try {
    hooks.onStage?.(`[1/3] prune ${(100 * o.prune.ratio).toFixed(0)} % by ${o.prune.importance} importance`);
    const pruned = await pruneModel(model, { ...o.prune, source: o.source });
    const prunedDir = path.join(work, "pruned");
    pruned.model.save(prunedDir);
    // Classification: every trial and the final recovery start from a linear probe fitted on the
    // pruned model, so the loss measures what quantization does to its features rather than how
    // far a random head gets in a few steps.
    let source = o.source;
    let head: Float32Array | undefined;
    if (source?.kind === "classify") {
      hooks.onStage?.("      classifier head: a linear probe fitted on the pruned float model");
      head = await probeHead(pruned.model, source.examples, { numLabels: source.numLabels, maxLen: source.maxLen, padId: source.padId, batch: source.batch, threads: o.recovery.threads, count: 1024, seed: o.recovery.seed });
      source = { ...source, head };
    }
    const tPrune = performance.now();

    hooks.onStage?.(`[2/3] allocate bits (${o.mixed.mode})`);
    const mixed = await allocateBits(pruned.model, {
      ...o.mixed,
      source,
      trial: { modelDir: prunedDir, task: o.data.task, dataFile: o.data.dataFile, numLabels: o.data.numLabels, head, recovery: o.mixed.recovery },
      onStage: (s) => hooks.onStage?.(`      ${s}`),
      onTrial: hooks.onTrial,
    });
    const tAllocate = performance.now();

    hooks.onStage?.(`[3/3] LoRA recovery: ${o.recovery.steps} steps on the pruned ${mixed.avgBits.toFixed(2)}-bit model`);
    const qm = quantizeModel(pruned.model, allocationPlan(mixed.budgetModel, mixed.allocation));
    // The adapter's base is the folder written here, not the float model.
    const method = loraMethod({ ...quantizedLoraBase(qm), baseName: path.resolve(o.outDir) }, { rank: o.recovery.rank, alpha: o.recovery.alpha, seed: o.recovery.seed }, "qlora");
    const task = loadTaskData(tokenizer, { ...o.data, ...(head ? { head } : {}) }).task(qm.config);
    const recovery = await train(
      method,
      task,
      {
        steps: o.recovery.steps,
        lr: o.recovery.lr,
        warmupSteps: o.recovery.warmup,
        minLrRatio: 0.1,
        weightDecay: 0,
        clip: 1,
        accumulate: 1,
        seed: o.recovery.seed,
        evalEvery: 0,
        checkpointEvery: 0,
        outDir: path.join(work, "recovery"),
        resume: false,
        threads: o.recovery.threads,
      },
      { onStep: hooks.onStep, onEval: hooks.onEval },
    );
    const tRecover = performance.now();

    const final = o.merge ? mergeIntoQuantized(qm, method.scale, method.trainable) : qm;
    const report = {
      base_model: model.sourceDir ? path.resolve(model.sourceDir) : null,
      prune: { importance: o.prune.importance, ratio: o.prune.ratio, schedule: o.prune.schedule, keep_first: o.prune.keepFirst, keep_last: o.prune.keepLast, ...pruned.report },
      mixed_precision: mixedPrecisionJson(mixed),
      recovery: { steps: recovery.steps, lr: o.recovery.lr, rank: o.recovery.rank, alpha: o.recovery.alpha, head_init: head ? "linear probe on the pruned float model (1024 examples)" : null, held_out_before: recovery.heldOutBefore, held_out_after: recovery.heldOutAfter, merged: o.merge },
      size: sizeReport(final),
    };
    replaceDirAtomic(o.outDir, (tmp) => {
      saveQuantizedFolder(tmp, final);
      if (o.merge) task.saveExtra(tmp);
      else {
        method.save(path.join(tmp, "adapter"));
        task.saveExtra(path.join(tmp, "adapter"));
      }
      writeMixedPrecisionReport(tmp, mixed, `QPruner: ${(100 * o.prune.ratio).toFixed(0)} % pruned, held-out loss against stored bytes`);
      writeFileAtomic(path.join(tmp, "qpruner.json"), `${JSON.stringify(report, null, 1)}\n`);
      // The final recovery's curves (the trials' own runs are summed up in mixed-precision.json).
      keepTrainingMetrics(tmp, readTrainingMetrics(path.join(work, "recovery")));
    });
    const files = folderSizes(o.outDir);
    const t1 = performance.now();
    return {
      prune: pruned,
      mixed,
      recovery,
      files,
      modelBytes: files["model.safetensors"] ?? 0,
      seconds: { prune: (tPrune - t0) / 1000, allocate: (tAllocate - tPrune) / 1000, recover: (tRecover - tAllocate) / 1000, total: (t1 - t0) / 1000 },
    };
  } finally {
    process.off("exit", cleanup);
    cleanup();
  }
}
