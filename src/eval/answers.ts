// Scores what a model answers: each record's prompt is generated from greedily until EOS or a length
// chosen from the reference, and the answer is compared with the reference by exact match after
// normalisation (case, whitespace, punctuation), overall and per `template` when records name one.
// Prompts are tokenized exactly as training tokenizes them (segment by segment, EOS after earlier
// answers), so a tuned model is asked in the form it learned.

import { SlimtuneError } from "../core/errors.js";
import type { ChatRenderer } from "../data/chat-template.js";
import type { ChatMessage, InstructRecord } from "../data/instruct-records.js";
import { bosFor, encodeSegments } from "../data/sft-examples.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import type { Generator } from "./generate.js";

/** Lower case, punctuation removed (Unicode letters and digits kept), whitespace collapsed. */
export function normalizeAnswer(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
}

export interface AnswerPrompt {
  line: number;
  template?: string;
  ids: number[];
  reference: string;
  referenceTokens: number;
}

/** The prompt ids (everything before the record's last answer) and the reference answer. */
export function answerPrompt(record: InstructRecord, renderer: ChatRenderer, tokenizer: TextTokenizer): AnswerPrompt {
  const { reference } = renderer.promptAndReference(record);
  const segments = renderer.segments(record);
  let last = segments.length - 1;
  while (last >= 0 && !segments[last]!.train) last--;
  const { ids } = encodeSegments(segments.slice(0, last), tokenizer, bosFor(record, renderer, tokenizer));
  return { line: record.line, ...(record.template !== undefined ? { template: record.template } : {}), ids, reference, referenceTokens: tokenizer.encode(reference).length };
}

/** Prompt ids for the assistant's next turn after `messages`, tokenized as training tokenizes conversations. */
export function conversationPrompt(messages: readonly ChatMessage[], renderer: ChatRenderer, tokenizer: TextTokenizer): number[] {
  const record: InstructRecord = { format: "messages", messages: [...messages, { role: "assistant", content: "" }], line: 0 };
  return answerPrompt(record, renderer, tokenizer).ids;
}

/** New tokens allowed for a reference of n tokens: room for it, its EOS, and a little more. */
export const defaultAnswerLength = (referenceTokens: number) => Math.ceil(1.5 * referenceTokens) + 4;

export interface AnswerResult {
  line: number;
  template?: string;
  reference: string;
  answer: string;
  match: boolean;
  stopReason: string;
}

export interface ExactMatchReport {
  exactMatch: number;
  examples: number;
  /** Per template name: examples and exact match, when records carry `template`. */
  perTemplate: Record<string, { examples: number; exactMatch: number }>;
  answers: AnswerResult[];
  seconds: number;
}

export async function exactMatch(
  generator: Generator,
  prompts: readonly AnswerPrompt[],
  opts: { maxNewTokens?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<ExactMatchReport> {
  if (prompts.length === 0) throw new SlimtuneError("E_DATA", "no records to answer");
  const started = performance.now();
  const context = generator.model.config.maxPositionEmbeddings;
  const answers: AnswerResult[] = [];
  for (const p of prompts) {
    const maxNewTokens = opts.maxNewTokens ?? defaultAnswerLength(p.referenceTokens);
    // A prompt too long for the context keeps its end, where the question is.
    const room = Math.max(1, context - maxNewTokens);
    const ids = p.ids.length > room ? p.ids.slice(p.ids.length - room) : p.ids;
    const r = await generator.generate(ids, { maxNewTokens, temperature: 0 });
    const match = normalizeAnswer(r.text) === normalizeAnswer(p.reference);
    answers.push({ line: p.line, ...(p.template !== undefined ? { template: p.template } : {}), reference: p.reference, answer: r.text, match, stopReason: r.stopReason });
    opts.onProgress?.(answers.length, prompts.length);
  }
  const perTemplate: ExactMatchReport["perTemplate"] = {};
  for (const a of answers) {
    if (a.template === undefined) continue;
    const t = (perTemplate[a.template] ??= { examples: 0, exactMatch: 0 });
    t.examples++;
    t.exactMatch += a.match ? 1 : 0;
  }
  for (const t of Object.values(perTemplate)) t.exactMatch /= t.examples;
  return {
    exactMatch: answers.filter((a) => a.match).length / answers.length,
    examples: answers.length,
    perTemplate,
    answers,
    seconds: (performance.now() - started) / 1000,
  };
}
