// One evaluation of the mixed-precision objective: quantize the model with an allocation, recover
// with K steps of LoRA on the quantized model (QLoRA), and measure the held-out task loss. Every
// trial starts from the same state (same LoRA and head initialisation, same batches), so trials
// differ only by their allocation, and a trial's result does not depend on which process runs it.
//
// The setup is plain JSON so that worker processes (workers.ts) can build the same runner.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SlimtuneError } from "../../core/errors.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { qloraMethod } from "../../methods/qlora/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { type Allocation, type BaseSpec, type BudgetModel, allocationAvgBits, allocationBytes, allocationPlan, budgetModel } from "../../quant/budget.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import type { QuantBits } from "../../quant/types.js";
import { train } from "../../train/loop.js";
import { loadTaskData } from "../task-data.js";

/** How each trial recovers and is scored. */
export interface RecoverySettings {
  /** LoRA steps per trial (K). */
  steps: number;
  lr: number;
  warmup: number;
  rank: number;
  alpha: number;
  batch: number;
  /** lm: tokens per sequence. */
  seq: number;
  /** classify: tokens kept per example. */
  maxLen: number;
  /** Fraction of the data (lm: the tail; classify: a seeded sample) held out for the objective. */
  heldOut: number;
  /** lm: held-out tokens scored; classify: held-out examples scored. */
  evalTokens: number;
  evalExamples: number;
  seed: number;
}

export const defaultRecovery: RecoverySettings = {
  steps: 30,
  lr: 1e-3,
  warmup: 5,
  rank: 8,
  alpha: 16,
  batch: 8,
  seq: 128,
  maxLen: 64,
  heldOut: 0.05,
  evalTokens: 16384,
  evalExamples: 512,
  seed: 0,
};

export interface TrialSetup {
  /** Float model folder to quantize (the pruned model, for QPruner). */
  modelDir: string;
  task: "lm" | "classify";
  dataFile: string;
  numLabels?: number;
  /** classify: the head every trial starts from (a probe fitted on the model), as plain numbers for IPC. */
  head?: number[];
  base: BaseSpec;
  choices: QuantBits[];
  recovery: RecoverySettings;
  /** ORT threads per trial (1 in workers, so that N workers use N cores). */
  threads: number;
}

export interface TrialOutcome {
  bits: Allocation;
  bytes: number;
  avgBits: number;
  /** Held-out loss after quantization, before recovery. */
  lossBefore: number;
  /** Held-out loss after K recovery steps: the objective. */
  loss: number;
  /** Task metric after recovery (accuracy or perplexity). */
  metrics: Record<string, number>;
  seconds: number;
}

export interface TrialRunner {
  budget: BudgetModel;
  evaluate(bits: Allocation): Promise<TrialOutcome>;
}

/** Loads the model and data once; each `evaluate` is one independent trial. */
export async function createTrialRunner(setup: TrialSetup): Promise<TrialRunner> {
  const model = LlamaModel.load(setup.modelDir);
  const tokenizer = await loadTokenizer(setup.modelDir);
  const r = setup.recovery;
  const bm = budgetModel(model, setup.base, setup.choices);
  const data = loadTaskData(tokenizer, {
    task: setup.task,
    dataFile: setup.dataFile,
    numLabels: setup.numLabels,
    batch: r.batch,
    seq: r.seq,
    maxLen: r.maxLen,
    heldOut: r.heldOut,
    evalTokens: r.evalTokens,
    evalExamples: r.evalExamples,
    ...(setup.head ? { head: Float32Array.from(setup.head) } : {}),
    seed: r.seed,
    modelSource: setup.modelDir,
  });
  return {
    budget: bm,
    evaluate: async (bits) => {
      const started = performance.now();
      const qm = quantizeModel(model, allocationPlan(bm, bits));
      const method = qloraMethod(qm, { rank: r.rank, alpha: r.alpha, seed: r.seed });
      const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-trial-"));
      try {
        const s = await train(method, data.task(model.config), {
          steps: r.steps,
          lr: r.lr,
          warmupSteps: r.warmup,
          minLrRatio: 0.1,
          weightDecay: 0,
          clip: 1,
          accumulate: 1,
          seed: r.seed,
          evalEvery: 0,
          checkpointEvery: 0,
          outDir,
          resume: false,
          threads: setup.threads,
        });
        if (!s.heldOutBefore || !s.heldOutAfter) throw new SlimtuneError("E_DATA", "the held-out split is empty; the objective needs held-out data — pass more data or a larger held-out fraction");
        return {
          bits: [...bits],
          bytes: allocationBytes(bm, bits),
          avgBits: allocationAvgBits(bm, bits),
          lossBefore: s.heldOutBefore.loss,
          loss: s.heldOutAfter.loss,
          metrics: s.heldOutAfter.metrics,
          seconds: (performance.now() - started) / 1000,
        };
      } finally {
        fs.rmSync(outDir, { recursive: true, force: true });
      }
    },
  };
}
