// Instruction records to token ids with a per-token loss mask. Each segment is tokenized on its
// own, so the prompt's tokens are exactly those a model sees when it is asked to answer (the prompt
// alone, tokenized at generation time). EOS follows each answer unless the template put it there.
//
// Examples longer than --seq (an example of n tokens fills n − 1 positions of a window):
//   cut-prompt  tokens are cut from the left, keeping the last answer whole with at least one token
//               before it; an example whose last answer alone does not fit is dropped
//   drop        the example is dropped
// Records with no prompt at all (plain "text") are split into consecutive windows instead, each
// sharing its first token with the previous one's last, so every token but the first is predicted once.

import { SlimtuneError } from "../core/errors.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import type { ChatRenderer, Segment } from "./chat-render.js";
import { type InstructBody, type InstructRecord, answerIsEmpty } from "./instruct-parse.js";

export const TOO_LONG_POLICIES = ["cut-prompt", "drop"] as const;
export type TooLongPolicy = (typeof TOO_LONG_POLICIES)[number];

export interface SftExample {
  /** Token ids of the whole example. */
  ids: Int32Array;
  /** 1 where predicting this token carries loss (index 0 never does: nothing precedes it). */
  loss: Uint8Array;
  /** Line of the record it came from. */
  line: number;
  template?: string;
}

export interface SftTokenizeOptions {
  /** Positions per window; an example of n tokens needs n − 1 ≤ seq. */
  seq: number;
  /** Put the loss on the prompt's tokens too. */
  trainOnPrompt: boolean;
  tooLong: TooLongPolicy;
}

export interface SftCounts {
  records: number;
  examples: number;
  /** Examples whose prompt was cut from the left to fit --seq. */
  promptCut: number;
  /** Examples dropped for being longer than --seq. */
  dropped: number;
  /** Records with an empty answer (trained to stop at once: EOS alone). */
  emptyAnswers: number;
  /** Extra windows made by splitting long prompt-less records. */
  splitWindows: number;
  tokens: number;
  lossTokens: number;
}

/** The token ids of segments, with 1 for each answer token, EOS after each answer, BOS first when asked. */
export function encodeSegments(segments: readonly Segment[], tokenizer: TextTokenizer, bosId?: number): { ids: number[]; answer: number[] } {
  const ids: number[] = [];
  const answer: number[] = [];
  if (bosId !== undefined) {
    ids.push(bosId);
    answer.push(0);
  }
  for (const s of segments) {
    const part = tokenizer.encode(s.text);
    if (s.train && tokenizer.eosTokenId !== undefined && !part.includes(tokenizer.eosTokenId)) part.push(tokenizer.eosTokenId);
    for (const id of part) {
      ids.push(id);
      answer.push(s.train ? 1 : 0);
    }
  }
  return { ids, answer };
}

/**
 * BOS before a record, as transformers tokenizes: a chat template writes its own (apply_chat_template
 * tokenizes without special tokens); other text gets the BOS the tokenizer adds to a prompt, if any.
 */
export function bosFor(body: InstructBody, renderer: ChatRenderer, tokenizer: TextTokenizer): number | undefined {
  const templated = renderer.hasTemplate && (body.format === "alpaca" || body.format === "messages");
  if (templated) return undefined;
  const plain = tokenizer.encode("a");
  const prompt = tokenizer.encodePrompt("a");
  return prompt.length === plain.length + 1 && tokenizer.bosTokenId !== undefined && prompt[0] === tokenizer.bosTokenId ? tokenizer.bosTokenId : undefined;
}

export function tokenizeRecords(
  records: readonly InstructRecord[],
  renderer: ChatRenderer,
  tokenizer: TextTokenizer,
  opts: SftTokenizeOptions,
  file?: string,
): { examples: SftExample[]; counts: SftCounts } {
  if (!(Number.isInteger(opts.seq) && opts.seq >= 2)) throw new SlimtuneError("E_ARG", `--seq ${opts.seq} must be an integer >= 2`);
  const counts: SftCounts = { records: records.length, examples: 0, promptCut: 0, dropped: 0, emptyAnswers: 0, splitWindows: 0, tokens: 0, lossTokens: 0 };
  const examples: SftExample[] = [];
  const keep = (ids: number[], answer: number[], r: InstructRecord) => {
    const loss = Uint8Array.from(answer, (a, i) => (i > 0 && (a === 1 || opts.trainOnPrompt) ? 1 : 0));
    examples.push({ ids: Int32Array.from(ids), loss, line: r.line, ...(r.template !== undefined ? { template: r.template } : {}) });
  };
  for (const r of records) {
    let segments: Segment[];
    try {
      segments = renderer.segments(r);
    } catch (err) {
      if (err instanceof SlimtuneError) throw new SlimtuneError(err.code, `line ${r.line}: ${err.message}`, file);
      throw err;
    }
    const { ids, answer } = encodeSegments(segments, tokenizer, bosFor(r, renderer, tokenizer));
    if (answerIsEmpty(r)) counts.emptyAnswers++;
    if (!answer.includes(1)) continue; // an answer that tokenizes to nothing (no EOS either): nothing to learn
    const excess = ids.length - 1 - opts.seq;
    if (excess <= 0) {
      keep(ids, answer, r);
    } else if (!answer.includes(0)) {
      for (let start = 0; start < ids.length - 1; start += opts.seq) {
        const end = Math.min(ids.length, start + opts.seq + 1);
        keep(ids.slice(start, end), answer.slice(start, end), r);
        if (start > 0) counts.splitWindows++;
      }
    } else if (opts.tooLong === "cut-prompt" && excess < lastAnswerStart(answer)) {
      keep(ids.slice(excess), answer.slice(excess), r);
      counts.promptCut++;
    } else {
      counts.dropped++;
    }
  }
  for (const e of examples) {
    counts.tokens += e.ids.length;
    counts.lossTokens += e.loss.reduce((a, b) => a + b, 0);
  }
  counts.examples = examples.length;
  if (examples.length === 0) {
    throw new SlimtuneError(
      "E_DATA",
      `none of the ${records.length} records fits --seq ${opts.seq} (${counts.dropped} dropped as too long); use a larger --seq` +
        (opts.tooLong === "drop" ? " or --too-long cut-prompt" : ""),
      file,
    );
  }
  return { examples, counts };
}

/** Index of the first token of the last run of answer tokens. */
function lastAnswerStart(answer: readonly number[]): number {
  let i = answer.length - 1;
  while (i >= 0 && answer[i] !== 1) i--;
  while (i > 0 && answer[i - 1] === 1) i--;
  return i;
}
