// The loss that importance is measured on, from a data file: language-modelling windows of a text
// file, or labelled examples of a TSV measured through a classifier head (one saved beside the
// model, else a linear probe fitted on the frozen model).

import type { FloatWeights } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { tokenizeExamples } from "../data/examples.js";
import { tokenizeFile } from "../data/text-file.js";
import { ChatRenderer, chatRendererFor } from "../data/chat-template.js";
import { readInstructFile } from "../data/instruct-records.js";
import { tokenizeRecords } from "../data/sft-examples.js";
import { readLabelledTsv } from "../data/tsv.js";
import { findClassifierHead } from "../formats/classifier-head.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { probeHead } from "./classify-probe.js";
import type { LossSource } from "./gradients.js";

export type TaskKind = "lm" | "classify";

export interface TaskSourceOptions {
  task: string;
  dataFile: string;
  batch: number;
  /** lm: tokens per window. */
  seq: number;
  /** classify: tokens kept per example. */
  maxLen: number;
  /** classify: classes (default: the data's largest label + 1). */
  numLabels?: number;
  /** classify: folders searched for a saved classifier head before fitting a probe. */
  headDirs?: string[];
  /** classify: examples the probe is fitted on (a seeded sample). */
  probeExamples?: number;
  seed: number;
  threads?: number;
  /** lm with a .jsonl file: the model folder or GGUF file whose chat template renders the records. */
  modelSource?: string;
  /** lm with a .jsonl file: a Jinja chat template file instead of the model's. */
  chatTemplateFile?: string;
}

export function parseTask(task: string): TaskKind {
  if (task !== "lm" && task !== "classify") throw new SlimtuneError("E_ARG", `unknown --task "${task}"; choose lm (text file) or classify (labelled TSV)`);
  return task;
}

export async function taskSource(model: FloatWeights, tokenizer: TextTokenizer, opts: TaskSourceOptions): Promise<LossSource & { headSource?: string }> {
  const task = parseTask(opts.task);
  if (task === "lm") return { kind: "lm", tokens: lmTokens(opts, tokenizer), batch: opts.batch, seq: opts.seq };
  const { examples: raw, numLabels: found } = readLabelledTsv(opts.dataFile);
  const examples = tokenizeExamples(raw, tokenizer);
  const saved = findClassifierHead(opts.headDirs ?? [], model.config);
  const numLabels = opts.numLabels ?? saved?.numLabels ?? Math.max(2, found);
  if (found > numLabels) throw new SlimtuneError("E_DATA", `data has labels up to ${found - 1}, but the head has ${numLabels}; pass --num-labels ${found}`, opts.dataFile);
  const padId = model.config.eosTokenId ?? 0;
  const common = { kind: "classify" as const, examples, batch: opts.batch, maxLen: opts.maxLen, padId, numLabels };
  if (saved && saved.numLabels === numLabels) return { ...common, head: saved.head, headSource: saved.dir };
  const count = Math.min(examples.length, opts.probeExamples ?? 1024);
  const head = await probeHead(model, examples, { numLabels, maxLen: opts.maxLen, padId, batch: opts.batch, threads: opts.threads, count, seed: opts.seed });
  return { ...common, head, headSource: `a linear probe fitted on ${count} examples` };
}

/**
 * The token stream importance is measured on: a text file whole, or the examples of instruction/chat
 * JSONL rendered as finetune --task sft renders them (chat template, prompt and answer, EOS after
 * each answer) one after another, so pruning sees the text the model will be tuned on.
 */
function lmTokens(opts: TaskSourceOptions, tokenizer: TextTokenizer): Int32Array {
  if (!opts.dataFile.toLowerCase().endsWith(".jsonl")) return tokenizeFile(opts.dataFile, tokenizer);
  const { records } = readInstructFile(opts.dataFile);
  const renderer = opts.modelSource ? chatRendererFor(opts.modelSource, opts.chatTemplateFile).renderer : new ChatRenderer(null);
  const { examples } = tokenizeRecords(records, renderer, tokenizer, { seq: Math.max(opts.seq, 2), trainOnPrompt: true, tooLong: "cut-prompt" }, opts.dataFile);
  const out = new Int32Array(examples.reduce((n, e) => n + e.ids.length, 0));
  let at = 0;
  for (const e of examples) {
    out.set(e.ids, at);
    at += e.ids.length;
  }
  return out;
}
