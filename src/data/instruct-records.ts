// Instruction data from files: a JSONL file read whole (bounded, regular files only) and a
// conversation file for generate --chat. Parsing (instruct-parse.ts) reads no files, so a web page
// uses it on pasted or picked text.

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import { regularFileSize, withIo } from "../core/io.js";
import { MAX_JSONL_BYTES, type ChatMessage, type ReadInstructOptions, type InstructFormat, type InstructRecord, parseInstructJsonl, parseMessages } from "./instruct-parse.js";

export * from "./instruct-parse.js";

export function readInstructFile(file: string, opts: ReadInstructOptions = {}): { format: InstructFormat; records: InstructRecord[] } {
  const size = regularFileSize(file, "data");
  if (size > MAX_JSONL_BYTES) {
    throw new SlimtuneError("E_DATA", `is ${(size / 2 ** 20).toFixed(0)} MiB; JSONL data is read whole and must be at most ${MAX_JSONL_BYTES / 2 ** 20} MiB — split it`, file);
  }
  const text = withIo(file, "read the data file", () => fs.readFileSync(file, "utf8"));
  return parseInstructJsonl(text, file, opts);
}

/**
 * A conversation to be answered (generate --chat): a JSON file holding {"messages": […]} or the
 * array itself, ending with a user (or system) message.
 */
export function readConversationFile(file: string): ChatMessage[] {
  const size = regularFileSize(file, "conversation");
  if (size > 16 * 2 ** 20) throw new SlimtuneError("E_DATA", `is ${size} bytes; a conversation file is at most 16 MiB`, file);
  const text = withIo(file, "read the conversation", () => fs.readFileSync(file, "utf8"));
  const fail = (message: string) => new SlimtuneError("E_DATA", message, file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw fail(`is not valid JSON (${(err as Error).message}); it must hold {"messages": [{"role", "content"}, …]}`);
  }
  const list = Array.isArray(value) ? value : typeof value === "object" && value !== null ? (value as Record<string, unknown>).messages : undefined;
  const messages = parseMessages(list, fail, { requireAssistant: false });
  if (messages[messages.length - 1]!.role === "assistant") throw fail(`the last message is the assistant's; end with the user message to answer`);
  return messages;
}
