// Reads a plain-text data file and tokenizes it whole (no BOS), as the perplexity protocol wants.

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import type { TextTokenizer } from "../formats/tokenizer.js";

export function readTextFile(file: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new SlimtuneError("E_NOT_FOUND", "data file not found; pass a UTF-8 text file with --data", file);
  }
  if (!stat.isFile()) throw new SlimtuneError("E_DATA", "is a folder; pass a UTF-8 text file with --data", file);
  const text = fs.readFileSync(file, "utf8");
  if (text.trim().length === 0) throw new SlimtuneError("E_DATA", "data file is empty; it needs text to score or train on", file);
  return text;
}

/** Token ids of the whole file, optionally only the first `maxTokens`. */
export function tokenizeFile(file: string, tokenizer: TextTokenizer, maxTokens?: number): Int32Array {
  const ids = Int32Array.from(tokenizer.encode(readTextFile(file)));
  if (ids.length < 2) throw new SlimtuneError("E_DATA", `data file has ${ids.length} token(s); at least 2 are needed`, file);
  return maxTokens !== undefined && maxTokens < ids.length ? ids.slice(0, maxTokens) : ids;
}
