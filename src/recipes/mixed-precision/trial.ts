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
import { Rng } from "../../core/rng.js";
import { tokenizeExamples } from "../../data/examples.js";
import { tokenizeFile } from "../../data/text-file.js";
import { readLabelledTsv } from "../../data/tsv.js";
import type { TokenizedExample } from "../../data/examples.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { qloraMethod } from "../../methods/qlora/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { type Allocation, type BaseSpec, type BudgetModel, allocationAvgBits, allocationBytes, allocationPlan, budgetModel } from "../../quant/budget.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import type { QuantBits } from "../../quant/types.js";
import { classifyTask } from "../../train/classify-task.js";
import { lmTask } from "../../train/lm-task.js";
import { train } from "../../train/loop.js";
import type { TrainTask } from "../../train/task.js";

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

/** Labelled examples split into training and a seeded held-out sample. */
export function splitExamples(examples: readonly TokenizedExample[], heldOut: number, seed: number): { train: TokenizedExample[]; heldOut: TokenizedExample[] } {
  const order = examples.map((_, i) => i);
  const rng = new Rng(seed + 7);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const n = Math.max(1, Math.round(heldOut * examples.length));
  if (n >= examples.length) throw new SlimtuneError("E_DATA", `holding out ${n} of ${examples.length} examples leaves none to train on; lower the held-out fraction or pass more data`);
  return { heldOut: order.slice(0, n).map((i) => examples[i]!), train: order.slice(n).map((i) => examples[i]!) };
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
  let makeTask: () => TrainTask;
  if (setup.task === "lm") {
    const tokens = tokenizeFile(setup.dataFile, tokenizer);
    makeTask = () => lmTask(tokens, { batch: r.batch, seq: r.seq, heldOut: r.heldOut, evalTokens: r.evalTokens });
  } else {
    const { examples, numLabels } = readLabelledTsv(setup.dataFile);
    const split = splitExamples(tokenizeExamples(examples, tokenizer), r.heldOut, r.seed);
    const labels = setup.numLabels ?? Math.max(2, numLabels);
    // A fresh task per trial: the classification head trains in place.
    makeTask = () =>
      classifyTask(model.config, split.train, split.heldOut, {
        batch: r.batch,
        maxLen: r.maxLen,
        numLabels: labels,
        padId: model.config.eosTokenId ?? 0,
        seed: r.seed,
        evalExamples: r.evalExamples,
      });
  }
  return {
    budget: bm,
    evaluate: async (bits) => {
      const started = performance.now();
      const qm = quantizeModel(model, allocationPlan(bm, bits));
      const method = qloraMethod(qm, { rank: r.rank, alpha: r.alpha, seed: r.seed });
      const outDir = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-trial-"));
      try {
        const s = await train(method, makeTask(), {
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
