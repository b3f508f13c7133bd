// Instruction data for a run, from files: the records (JSONL in any of the four formats), the chat
// template (--chat-template FILE, else the model's tokenizer_config.json, else the defaults per
// format), tokenized with answer-only loss masks; held out from --eval-data or a seeded sample of
// the training records (split before tokenizing, so no piece of a held-out record is trained on).

import { ChatRenderer, chatRendererFor, readChatTemplateFile } from "../data/chat-template.js";
import { type InstructFormat, type InstructRecord, readInstructFile, splitRecords } from "../data/instruct-records.js";

export { splitRecords };
import { type SftCounts, type SftExample, type TooLongPolicy, tokenizeRecords } from "../data/sft-examples.js";
import type { TextTokenizer } from "../formats/tokenizer.js";

export interface SftDataOptions {
  dataFile: string;
  evalFile?: string;
  format?: InstructFormat;
  chatTemplateFile?: string;
  trainOnPrompt: boolean;
  tooLong: TooLongPolicy;
  seq: number;
  /** Without evalFile: the fraction of training records held out (0: none). */
  heldOut: number;
  seed: number;
}

export interface SftDataSummary {
  format: InstructFormat;
  /** Where the chat template came from, or "none". */
  chatTemplate: string;
  train: SftCounts;
  heldOut: SftCounts | null;
  scoredOn: string;
}

export interface SftData {
  train: SftExample[];
  heldOut: SftExample[];
  renderer: ChatRenderer;
  summary: SftDataSummary;
}

/** `modelSource` null: no model template (the plain defaults, or --chat-template). */
export function loadSftData(modelSource: string | null, tokenizer: TextTokenizer, o: SftDataOptions): SftData {
  const { renderer, source } =
    modelSource !== null
      ? chatRendererFor(modelSource, o.chatTemplateFile)
      : o.chatTemplateFile
        ? { renderer: new ChatRenderer(readChatTemplateFile(o.chatTemplateFile), {}, o.chatTemplateFile), source: o.chatTemplateFile }
        : { renderer: new ChatRenderer(null), source: "none (the default per format)" };
  const data = readInstructFile(o.dataFile, o.format ? { format: o.format } : {});
  const tokenize = (records: readonly InstructRecord[], file: string) =>
    tokenizeRecords(records, renderer, tokenizer, { seq: o.seq, trainOnPrompt: o.trainOnPrompt, tooLong: o.tooLong }, file);
  let trainRecords = data.records;
  let heldOutRecords: InstructRecord[] = [];
  let scoredOn = "";
  if (o.evalFile) {
    heldOutRecords = readInstructFile(o.evalFile, { format: o.format ?? data.format }).records;
    scoredOn = o.evalFile;
  } else if (o.heldOut > 0) {
    const split = splitRecords(data.records, o.heldOut, o.seed);
    trainRecords = split.train;
    heldOutRecords = split.heldOut;
    scoredOn = `a held-out ${(100 * o.heldOut).toFixed(0)} % sample of ${o.dataFile}`;
  }
  const train = tokenize(trainRecords, o.dataFile);
  const held = heldOutRecords.length > 0 ? tokenize(heldOutRecords, o.evalFile ?? o.dataFile) : null;
  return {
    train: train.examples,
    heldOut: held?.examples ?? [],
    renderer,
    summary: { format: data.format, chatTemplate: source, train: train.counts, heldOut: held?.counts ?? null, scoredOn },
  };
}

/** One line per part for the run's log: what was read, how it was cut to fit, and the template. */
export function describeSftData(s: SftDataSummary, seq: number): string[] {
  const counts = (c: SftCounts) => {
    const notes = [
      c.promptCut ? `${c.promptCut} prompts cut from the left` : "",
      c.dropped ? `${c.dropped} dropped as longer than --seq ${seq}` : "",
      c.splitWindows ? `${c.splitWindows} extra windows from long texts` : "",
      c.emptyAnswers ? `${c.emptyAnswers} with an empty answer (trained to stop)` : "",
    ].filter(Boolean);
    return `${c.records.toLocaleString("en")} records → ${c.examples.toLocaleString("en")} examples, ${c.lossTokens.toLocaleString("en")} of ${c.tokens.toLocaleString("en")} tokens carry loss${notes.length ? ` (${notes.join(", ")})` : ""}`;
  };
  const lines = [`data: ${s.format} records, chat template: ${s.chatTemplate}`, `train: ${counts(s.train)}`];
  if (s.heldOut) lines.push(`held out (${s.scoredOn}): ${counts(s.heldOut)}`);
  return lines;
}
