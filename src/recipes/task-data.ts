// The training task a recipe recovers on, from data files: language modelling on a text file (its
// tail held out), or classification on a labelled TSV scored on --eval-data (or, without one, on a
// seeded held-out sample of the training examples). Read and tokenized once; `task()` builds a fresh
// task each time (a classification head trains in place, so runs must not share one).

import type { LlamaConfig } from "../arch/llama/config.js";
import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { type TokenizedExample, tokenizeExamples } from "../data/examples.js";
import { tokenizeFile } from "../data/text-file.js";
import { readLabelledTsv } from "../data/tsv.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { classifyTask } from "../train/classify-task.js";
import { lmTask } from "../train/lm-task.js";
import { sftTask } from "../train/sft-task.js";
import { loadSftData } from "./sft-data.js";
import type { TrainTask } from "../train/task.js";

export interface TaskDataOptions {
  task: "lm" | "classify";
  dataFile: string;
  /** classify: dev TSV scored for accuracy (default: a held-out sample of dataFile). */
  evalFile?: string;
  numLabels?: number;
  batch: number;
  seq: number;
  maxLen: number;
  /** lm: tail fraction held out; classify without evalFile: fraction of examples held out. */
  heldOut: number;
  evalTokens: number;
  /** classify: dev examples scored per evaluation (default: all). */
  evalExamples?: number;
  /** classify: the head [numLabels, C] every task starts from (default: random, std 0.02). */
  head?: Float32Array;
  seed: number;
  /** lm with a .jsonl file: the model whose chat template renders the records (default: none, the plain defaults). */
  modelSource?: string;
}

export interface TaskData {
  task(config: LlamaConfig): TrainTask;
  /** What the task scores: "held-out tail of …", "dev.tsv", "held-out sample of …". */
  scoredOn: string;
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
  if (!(heldOut > 0) || n >= examples.length) {
    throw new SlimtuneError("E_DATA", `holding out ${heldOut} of ${examples.length} examples leaves nothing to score or nothing to train on; pass --held-out in (0, 1) or more data`);
  }
  return { heldOut: order.slice(0, n).map((i) => examples[i]!), train: order.slice(n).map((i) => examples[i]!) };
}

export function loadTaskData(tokenizer: TextTokenizer, o: TaskDataOptions): TaskData {
  if (o.task === "lm" && o.dataFile.toLowerCase().endsWith(".jsonl")) {
    // Instruction data recovers as finetune --task sft trains: loss on the answers, packed rows.
    const sft = loadSftData(o.modelSource ?? null, tokenizer, { dataFile: o.dataFile, ...(o.evalFile ? { evalFile: o.evalFile } : {}), trainOnPrompt: false, tooLong: "cut-prompt", seq: o.seq, heldOut: o.heldOut, seed: o.seed });
    return {
      task: (config) => sftTask(sft.train, sft.heldOut, { batch: o.batch, seq: o.seq, pack: true, padId: config.eosTokenId ?? 0, evalExamples: o.evalExamples }),
      scoredOn: `the answers of ${sft.summary.scoredOn}`,
    };
  }
  if (o.task === "lm") {
    const tokens = tokenizeFile(o.dataFile, tokenizer);
    return { task: () => lmTask(tokens, { batch: o.batch, seq: o.seq, heldOut: o.heldOut, evalTokens: o.evalTokens }), scoredOn: `the last ${(100 * o.heldOut).toFixed(0)} % of ${o.dataFile}` };
  }
  const train = readLabelledTsv(o.dataFile);
  const examples = tokenizeExamples(train.examples, tokenizer);
  const dev = o.evalFile ? readLabelledTsv(o.evalFile) : null;
  const split = dev ? { train: examples, heldOut: tokenizeExamples(dev.examples, tokenizer) } : splitExamples(examples, o.heldOut, o.seed);
  const numLabels = o.numLabels ?? Math.max(2, train.numLabels, dev?.numLabels ?? 0);
  return {
    task: (config) =>
      classifyTask(config, split.train, split.heldOut, {
        batch: o.batch,
        maxLen: o.maxLen,
        numLabels,
        padId: config.eosTokenId ?? 0,
        seed: o.seed,
        evalExamples: o.evalExamples,
        ...(o.head ? { head: o.head } : {}),
      }),
    scoredOn: o.evalFile ?? `a held-out ${(100 * o.heldOut).toFixed(0)} % sample of ${o.dataFile}`,
  };
}
