// What the page trains on: plain text (language modelling over every token) or JSON Lines of
// instruction records — {text}, {prompt,completion}, Alpaca {instruction,input,output} or chat
// {messages} — tokenized as `slimtune finetune --task sft` does (src/data's parser and chat
// renderer, answer-only loss, packed rows), but from text the user pasted or picked, not a path.

import { SlimtuneError } from "../core/errors.js";
import type { ChatRenderer } from "../data/chat-render.js";
import { type InstructFormat, type InstructRecord, parseInstructJsonl, splitRecords } from "../data/instruct-parse.js";
import { tokenizeRecords } from "../data/sft-examples.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { sftTask } from "../train/sft-task.js";
import type { TrainTask } from "../train/task.js";

/** "auto": JSONL when the first non-blank line is a JSON object, plain text otherwise. */
export type WebDataFormat = "auto" | "text" | "jsonl";

export interface WebDataChoice {
  format?: WebDataFormat;
  /** What errors name: a picked file's name, or "the pasted text". */
  source?: string;
}

export type WebTrainingData =
  | { kind: "text"; tokens: Int32Array; summary: string }
  | { kind: "sft"; format: InstructFormat; task: TrainTask; summary: string };

export interface WebSftShape {
  batch: number;
  seq: number;
  /** Fraction of the records held out (as finetune --held-out); skipped when it would leave none on either side. */
  heldOut: number;
  seed: number;
  padId: number;
}

/** True when the first non-blank line opens a JSON object (what a JSONL record starts with). */
export function looksLikeJsonl(text: string): boolean {
  const first = text.split("\n").find((l) => l.trim() !== "");
  return first !== undefined && first.trimStart().startsWith("{");
}

/** The held-out split finetune makes, or none when the records are too few to split. */
function split(records: InstructRecord[], fraction: number, seed: number): { train: InstructRecord[]; heldOut: InstructRecord[] } {
  const n = Math.round(fraction * records.length);
  if (!(fraction > 0 && fraction < 1) || n < 1 || n >= records.length) return { train: records, heldOut: [] };
  return splitRecords(records, fraction, seed);
}

/** Tokenizes `text` as the page's training data; a malformed JSONL line is E_DATA naming the line and field. */
export function webTrainingData(text: string, tokenizer: TextTokenizer, renderer: ChatRenderer, shape: WebSftShape, choice: WebDataChoice = {}): WebTrainingData {
  const source = choice.source ?? "the pasted text";
  if (text.trim() === "") throw new SlimtuneError("E_DATA", "there is no training text; paste some or pick a .txt or .jsonl file", source);
  const jsonl = choice.format === "jsonl" || ((choice.format ?? "auto") === "auto" && looksLikeJsonl(text));
  if (!jsonl) {
    const tokens = Int32Array.from(tokenizer.encode(text));
    return { kind: "text", tokens, summary: `plain text: ${tokens.length.toLocaleString("en")} tokens, loss on every token` };
  }
  const { format, records } = parseInstructJsonl(text, source);
  const parts = split(records, shape.heldOut, shape.seed);
  const opts = { seq: shape.seq, trainOnPrompt: false, tooLong: "cut-prompt" as const };
  const train = tokenizeRecords(parts.train, renderer, tokenizer, opts, source);
  const held = parts.heldOut.length > 0 ? tokenizeRecords(parts.heldOut, renderer, tokenizer, opts, source) : null;
  const task = sftTask(train.examples, held?.examples ?? [], { batch: shape.batch, seq: shape.seq, pack: true, padId: shape.padId });
  const c = train.counts;
  const notes = [c.promptCut ? `${c.promptCut} prompts cut from the left` : "", c.dropped ? `${c.dropped} dropped as longer than seq ${shape.seq}` : ""].filter(Boolean);
  const summary =
    `${format} JSONL: ${c.records} records → ${c.examples} examples, ${c.lossTokens.toLocaleString("en")} of ${c.tokens.toLocaleString("en")} tokens carry loss (answers only)` +
    (notes.length ? ` (${notes.join(", ")})` : "") +
    (held ? `; ${parts.heldOut.length} records held out` : "; none held out (too few records)");
  return { kind: "sft", format, task, summary };
}
