// Reads a plain-text data file and tokenizes it (no BOS), as the perplexity protocol wants: whole,
// or only as far as a token bound needs. Data files must be regular files of UTF-8 text; a NUL byte
// or invalid UTF-8 is refused with its byte offset, so a binary file fails at once instead of being
// tokenized for minutes.

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import { regularFileSize, withIo } from "../core/io.js";
import type { TextTokenizer } from "../formats/tokenizer.js";

/** Largest file read whole: V8 strings stop at 2^29 − 24 characters, and a UTF-8 byte is at most one. */
export const MAX_WHOLE_TEXT_BYTES = (1 << 29) - 1024;
/** Bytes read per step when only a bounded number of tokens is wanted. */
const FIRST_READ_BYTES = 1 << 16;
/** Tokens past the bound that a prefix must yield before its first `maxTokens` are trusted (see tokenizeFile). */
const CUT_MARGIN_TOKENS = 64;

const fixText = "pass a UTF-8 text file with --data";

/** The size of a data file after checking that it exists and is a regular file (FIFOs and devices are refused unopened). */
function dataFileSize(file: string): number {
  const st = withIo(file, "read the data file", () => fs.statSync(file, { throwIfNoEntry: false }));
  if (!st) throw new SlimtuneError("E_NOT_FOUND", `data file not found; ${fixText}`, file);
  return regularFileSize(file, "data");
}

/**
 * Offset of the first byte that is not part of valid UTF-8 text (a NUL, a stray continuation
 * byte, an overlong or truncated sequence, a surrogate or a code point past U+10FFFF), or -1.
 * A sequence cut off by the end of `bytes` counts as valid only when `partialEndOk`.
 */
export function firstInvalidTextByte(bytes: Uint8Array, partialEndOk = false): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b === 0) return i;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      if (i + k >= bytes.length) return partialEndOk ? -1 : i; // cut off by the end of what was read
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

function notText(file: string, offset: number, bytes: Uint8Array): SlimtuneError {
  const what = bytes[offset] === 0 ? "a NUL byte" : `invalid UTF-8 (byte 0x${bytes[offset]!.toString(16).padStart(2, "0")})`;
  return new SlimtuneError("E_DATA", `byte offset ${offset}: ${what}; this is not a text file — ${fixText}`, file);
}

/** Decodes `bytes` as UTF-8 text, refusing NUL bytes and invalid sequences with their byte offset. */
function decodeText(bytes: Uint8Array, file: string): string {
  // The native decoder and indexOf are fast; the byte-by-byte scan runs only to locate a failure.
  const nul = bytes.indexOf(0);
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
    if (nul >= 0) throw notText(file, nul, bytes);
    return text;
  } catch (err) {
    if (err instanceof SlimtuneError) throw err;
    const at = firstInvalidTextByte(bytes);
    throw notText(file, at < 0 ? 0 : at, bytes);
  }
}

function readBytes(file: string, fd: number, into: Uint8Array, from: number): number {
  let done = 0;
  while (done < into.length) {
    const n = withIo(file, "read the data file", () => fs.readSync(fd, into, done, into.length - done, from + done));
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** The whole file as text, after checking it is a regular file of UTF-8 text that is not empty. */
export function readTextFile(file: string): string {
  const size = dataFileSize(file);
  if (size > MAX_WHOLE_TEXT_BYTES) {
    throw new SlimtuneError("E_DATA", `is ${size} bytes; files over ${MAX_WHOLE_TEXT_BYTES} bytes cannot be read whole — split it, or read only the first tokens (--max-tokens)`, file);
  }
  const bytes = withIo(file, "read the data file", () => fs.readFileSync(file));
  const text = decodeText(bytes, file);
  if (text.trim().length === 0) throw new SlimtuneError("E_DATA", "data file is empty; it needs text to score or train on", file);
  return text;
}

/**
 * Token ids of the file, or only its first `maxTokens`. With a bound, the file is read and encoded
 * in growing prefixes cut at a line end (64 KB, then doubling), and reading stops once a prefix
 * yields `maxTokens` plus a margin: tokens can only differ from the whole file's near the cut, so
 * the first `maxTokens` are the whole file's first `maxTokens`. Work is at most twice that of
 * encoding the prefix needed, however large the file.
 */
export function tokenizeFile(file: string, tokenizer: TextTokenizer, maxTokens?: number): Int32Array {
  if (maxTokens === undefined) return atLeastTwo(Int32Array.from(tokenizer.encode(readTextFile(file))), file);
  if (!(Number.isSafeInteger(maxTokens) && maxTokens >= 2)) {
    throw new SlimtuneError("E_ARG", `token bound ${maxTokens} must be an integer >= 2; pass e.g. --max-tokens 100000`);
  }
  const size = dataFileSize(file);
  const fd = withIo(file, "open the data file", () => fs.openSync(file, "r"));
  try {
    let bytes = new Uint8Array(0);
    let want = Math.max(FIRST_READ_BYTES, maxTokens * 8);
    for (;;) {
      const target = Math.min(size, want, MAX_WHOLE_TEXT_BYTES);
      const grown = new Uint8Array(target);
      grown.set(bytes);
      const got = readBytes(file, fd, grown.subarray(bytes.length), bytes.length);
      bytes = grown.subarray(0, bytes.length + got);
      const atEnd = bytes.length >= size || got === 0 || target === MAX_WHOLE_TEXT_BYTES;
      // Cut after the last newline so no line is split (after the last space for a file without
      // newlines); at the end of the file take everything.
      const newline = bytes.lastIndexOf(0x0a);
      const cut = atEnd ? bytes.length - 1 : newline >= 0 ? newline : bytes.lastIndexOf(0x20);
      const prefix = bytes.subarray(0, cut + 1);
      const bad = firstInvalidTextByte(bytes, !atEnd);
      if (bad >= 0) throw notText(file, bad, bytes);
      if (prefix.length > 0) {
        const text = decodeText(prefix, file);
        if (text.trim().length > 0 || atEnd) {
          const ids = tokenizer.encode(text);
          if (atEnd || ids.length >= maxTokens + CUT_MARGIN_TOKENS) {
            if (atEnd && text.trim().length === 0) throw new SlimtuneError("E_DATA", "data file is empty; it needs text to score or train on", file);
            return atLeastTwo(Int32Array.from(ids.length > maxTokens ? ids.slice(0, maxTokens) : ids), file);
          }
        }
      } else if (atEnd) {
        throw new SlimtuneError("E_DATA", "data file is empty; it needs text to score or train on", file);
      }
      want = bytes.length * 2;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function atLeastTwo(ids: Int32Array, file: string): Int32Array {
  if (ids.length < 2) throw new SlimtuneError("E_DATA", `data file has ${ids.length} token(s); at least 2 are needed`, file);
  return ids;
}
