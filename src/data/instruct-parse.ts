// Instruction and chat data as fine-tuning tools take it: JSON Lines whose records are plain text
// {"text"}, {"prompt","completion"}, Alpaca {"instruction","input","output"}, or chat
// {"messages":[{"role","content"},…]}. The format comes from the first record's fields (or is
// named); every record is then checked against it, and one that does not fit is E_DATA naming the
// file, the line and the field.

import { Rng } from "../core/rng.js";
import { SlimtuneError, quote } from "../core/errors.js";

export const INSTRUCT_FORMATS = ["text", "prompt-completion", "alpaca", "messages"] as const;
export type InstructFormat = (typeof INSTRUCT_FORMATS)[number];

export const CHAT_ROLES = ["system", "user", "assistant"] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export type InstructBody =
  | { format: "text"; text: string }
  | { format: "prompt-completion"; prompt: string; completion: string }
  | { format: "alpaca"; instruction: string; input: string; output: string }
  | { format: "messages"; messages: ChatMessage[] };

export type InstructRecord = InstructBody & {
  /** 1-based line of the file, for messages about this record. */
  line: number;
  /** The record's `template` field when it has one (T0 mixtures name each prompt template), for per-template scores. */
  template?: string;
};

/** Larger files would not fit in one JavaScript string; split them. */
export const MAX_JSONL_BYTES = 512 * 2 ** 20;

/** The format a record's fields say it is, or null. */
export function formatOfFields(record: Record<string, unknown>): InstructFormat | null {
  if ("messages" in record) return "messages";
  if ("instruction" in record && "output" in record) return "alpaca";
  if ("prompt" in record && "completion" in record) return "prompt-completion";
  if ("text" in record) return "text";
  return null;
}

export interface ReadInstructOptions {
  /** Skip detection and hold every record to this format. */
  format?: InstructFormat;
}

/** Parses JSONL text (`file` is only named in errors). */
export function parseInstructJsonl(text: string, file: string, opts: ReadInstructOptions = {}): { format: InstructFormat; records: InstructRecord[] } {
  const lines = text.split("\n");
  let format = opts.format;
  const records: InstructRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === "") continue;
    const line = i + 1;
    const fail = (message: string) => new SlimtuneError("E_DATA", `line ${line}: ${message}`, file);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw fail(`is not valid JSON (${(err as Error).message}); each line must be one JSON object`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw fail(`is ${quote(raw, 40)}, not a JSON object; each line must be one record {…}`);
    const record = value as Record<string, unknown>;
    if (format === undefined) {
      const detected = formatOfFields(record);
      if (!detected) {
        throw fail(
          `has fields ${quote(Object.keys(record).join(", "))}; a record needs "text", "prompt"+"completion", "instruction"+"input"+"output" (Alpaca) or "messages" — or name the format with --data-format`,
        );
      }
      format = detected;
    }
    records.push({ ...parseBody(record, format, fail), line, ...templateOf(record, fail) });
  }
  if (!format || records.length === 0) throw new SlimtuneError("E_DATA", "has no records; each line must be one JSON object", file);
  return { format, records };
}

/**
 * An empty completion or output is accepted: its answer is EOS alone (stop at once). Real data has
 * them (1,264 of T0-mix's 13,395 training records, TREC prompts whose label was lost), so the
 * tokenizer counts them in its summary rather than refusing the file.
 */
export function answerIsEmpty(body: InstructBody): boolean {
  switch (body.format) {
    case "text":
      return false;
    case "prompt-completion":
      return body.completion.trim() === "";
    case "alpaca":
      return body.output.trim() === "";
    case "messages":
      return body.messages.some((m) => m.role === "assistant" && m.content.trim() === "");
  }
}

function templateOf(record: Record<string, unknown>, fail: (m: string) => SlimtuneError): { template?: string } {
  if (record.template === undefined) return {};
  if (typeof record.template !== "string") throw fail(`field "template" is ${quote(record.template)}; it must be a string naming the prompt template`);
  return { template: record.template };
}

function parseBody(record: Record<string, unknown>, format: InstructFormat, fail: (m: string) => SlimtuneError): InstructBody {
  const str = (field: string, opts: { optional?: boolean; nonEmpty?: boolean } = {}): string => {
    const v = record[field];
    if (v === undefined && opts.optional) return "";
    if (v === undefined) throw fail(`has no field "${field}", which ${format} records need (the format came from ${describeFormatSource(format)})`);
    if (typeof v !== "string") throw fail(`field "${field}" is ${quote(v)}; it must be a string`);
    if (opts.nonEmpty && v.trim() === "") throw fail(`field "${field}" is empty; there is nothing to train on`);
    return v;
  };
  switch (format) {
    case "text":
      return { format, text: str("text", { nonEmpty: true }) };
    case "prompt-completion":
      return { format, prompt: str("prompt"), completion: str("completion") };
    case "alpaca":
      return { format, instruction: str("instruction", { nonEmpty: true }), input: str("input", { optional: true }), output: str("output") };
    case "messages":
      return { format, messages: parseMessages(record.messages, fail) };
  }
}

function describeFormatSource(format: InstructFormat): string {
  return `the first record's fields or --data-format ${format}`;
}

/**
 * A `messages` array checked message by message; training records must hold an assistant turn,
 * a conversation to be answered (chat, generate --chat) need not.
 */
export function parseMessages(value: unknown, fail: (m: string) => SlimtuneError, opts: { requireAssistant?: boolean } = {}): ChatMessage[] {
  if (!Array.isArray(value)) throw fail(`field "messages" is ${quote(value)}; it must be an array of {"role","content"}`);
  if (value.length === 0) throw fail(`field "messages" is empty; it needs at least one assistant message`);
  const messages = value.map((m: unknown, k): ChatMessage => {
    const at = `messages[${k}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw fail(`field "${at}" is ${quote(m)}; it must be {"role","content"}`);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw fail(`field "${at}.role" is ${quote(role)}; it must be one of ${CHAT_ROLES.join(", ")}`);
    }
    if (typeof content !== "string") throw fail(`field "${at}.content" is ${quote(content)}; it must be a string`);
    return { role: role as ChatRole, content };
  });
  if ((opts.requireAssistant ?? true) && !messages.some((m) => m.role === "assistant")) throw fail(`field "messages" has no assistant message; only assistant turns carry loss, so there is nothing to train on`);
  return messages;
}

/** A seeded sample of `fraction` of the records held out. */
export function splitRecords(records: readonly InstructRecord[], fraction: number, seed: number): { train: InstructRecord[]; heldOut: InstructRecord[] } {
  const n = Math.round(fraction * records.length);
  if (!(fraction > 0 && fraction < 1) || n < 1 || n >= records.length) {
    throw new SlimtuneError("E_DATA", `holding out ${fraction} of ${records.length} records leaves nothing to score or nothing to train on; pass --held-out in (0, 1), --eval-data, or more data`);
  }
  const order = records.map((_, i) => i);
  const rng = new Rng(seed + 11);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const held = new Set(order.slice(0, n));
  return { train: records.filter((_, i) => !held.has(i)), heldOut: records.filter((_, i) => held.has(i)) };
}
