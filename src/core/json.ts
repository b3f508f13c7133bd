// Reading JSON files the project depends on (configs, adapters, checkpoints) through zod schemas,
// so a missing or mistyped field is a typed error naming the file, the field and what was expected,
// never a TypeError deep inside.

import fs from "node:fs";
import { z } from "zod";
import { SlimtuneError, type SlimtuneErrorCode } from "./errors.js";
import { regularFileSize, withIo } from "./io.js";

/**
 * Deepest nesting any JSON file slimtune reads may have. Real configs and tokenizer.json files stay
 * under 10 levels; JSON.parse accepts 20,000, but then every recursive consumer (JSON.stringify in a
 * message, zod, the tokenizer library) overflows the stack, so deeper files are refused up front.
 */
export const MAX_JSON_DEPTH = 128;
/** Largest JSON file read by default (configs are kilobytes; tokenizer.json passes its own, larger cap). */
export const MAX_JSON_BYTES = 64 << 20;

/** The index of the first bracket that opens level `limit + 1`, or -1 when `text` nests no deeper than `limit`. */
export function jsonDepthExceeded(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return i;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return -1;
}

export interface JsonParseContext {
  file: string;
  /** Error code for text that is not valid JSON or nests too deeply (default E_CONFIG). */
  code?: SlimtuneErrorCode;
  /** What to do about it (after "is not valid JSON (…); "). */
  invalidFix?: string;
}

/** JSON.parse after a nesting-depth check: text nested deeper than MAX_JSON_DEPTH is a typed error, never a stack overflow later. */
export function parseJsonText(text: string, ctx: JsonParseContext): unknown {
  const code = ctx.code ?? "E_CONFIG";
  const fix = ctx.invalidFix ?? "re-create it";
  const deep = jsonDepthExceeded(text);
  if (deep >= 0) throw new SlimtuneError(code, `nests deeper than ${MAX_JSON_DEPTH} levels (at character ${deep}); no slimtune file does — ${fix}`, ctx.file);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new SlimtuneError(code, `is not valid JSON (${(err as Error).message.slice(0, 160)}); ${fix}`, ctx.file);
  }
}

export interface JsonReadOptions {
  /** Error code for a file that is not valid JSON or not an object (default E_CONFIG). */
  code?: SlimtuneErrorCode;
  /** What to do when the file is missing (after "does not exist; "). */
  missingFix: string;
  /** What to do when it is not valid JSON (after "is not valid JSON (…); "). */
  invalidFix?: string;
  /** Largest file accepted, in bytes (default MAX_JSON_BYTES). */
  maxBytes?: number;
}

/**
 * A JSON file's text: a missing file or a folder is E_NOT_FOUND with `missingFix`, a FIFO, device
 * or unreadable file E_IO (checked before opening, so nothing blocks), a file over the cap `code`.
 */
export function readJsonText(file: string, opts: JsonReadOptions): string {
  const code = opts.code ?? "E_CONFIG";
  const maxBytes = opts.maxBytes ?? MAX_JSON_BYTES;
  // statSync reports ENOENT as undefined; a parent folder that cannot be searched throws EACCES (E_IO).
  const st = withIo(file, "read the JSON file", () => fs.statSync(file, { throwIfNoEntry: false }));
  if (!st) throw new SlimtuneError("E_NOT_FOUND", `does not exist; ${opts.missingFix}`, file);
  if (st.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", `is a folder, expected a JSON file; ${opts.missingFix}`, file);
  const size = regularFileSize(file, "JSON");
  if (size > maxBytes) throw new SlimtuneError(code, `is ${size} bytes, more than the ${maxBytes}-byte limit for this file; it is not the file slimtune expects — ${opts.invalidFix ?? "re-create it"}`, file);
  return withIo(file, "read the JSON file", () => fs.readFileSync(file, "utf8"));
}

/** Reads a file that must hold one JSON object. */
export function readJsonObject(file: string, opts: JsonReadOptions): Record<string, unknown> {
  const code = opts.code ?? "E_CONFIG";
  const json = parseJsonText(readJsonText(file, opts), { file, code, ...(opts.invalidFix ? { invalidFix: opts.invalidFix } : {}) });
  if (!isJsonObject(json)) throw new SlimtuneError(code, `must be a JSON object; ${opts.invalidFix ?? "re-create it"}`, file);
  return json;
}

export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface FieldContext {
  file: string;
  code?: SlimtuneErrorCode;
  /** Put before the field, e.g. "quantization_config: ". */
  prefix?: string;
  /** How a field is named in the message (default: the name in double quotes). */
  label?: (field: string) => string;
  /** How a missing field reads after "is" (default "missing"). */
  missing?: string;
  /** What to do about it, appended after " — ". */
  fix: string;
}

type Expectations<S extends z.ZodRawShape> = { [K in keyof S]: string };

/**
 * Validates the fields of `json` named in `shape` (other keys are kept and ignored) and returns
 * them typed. The first failing field becomes `<prefix><field> is <value>; expected <what> — <fix>`.
 */
export function parseFields<S extends z.ZodRawShape>(json: unknown, shape: S, expected: Expectations<S>, ctx: FieldContext): z.infer<z.ZodObject<S>> {
  const fail = (message: string): never => {
    throw new SlimtuneError(ctx.code ?? "E_CONFIG", message, ctx.file);
  };
  if (!isJsonObject(json)) fail(`${ctx.prefix ?? ""}must be a JSON object; ${ctx.fix}`);
  const obj = json as Record<string, unknown>;
  const parsed = z.looseObject(shape).safeParse(obj);
  if (parsed.success) return parsed.data as z.infer<z.ZodObject<S>>;
  const issue = parsed.error.issues[0]!;
  const top = String(issue.path[0] ?? "");
  const where = issue.path.length > 1 ? `${top}${issue.path.slice(1).map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}` : top;
  const label = (ctx.label ?? ((f: string) => `"${f}"`))(where.length > 120 ? `${where.slice(0, 120)}…` : where);
  const got = Object.hasOwn(obj, top) ? `is ${shownJson(valueAt(obj, issue.path))}` : `is ${ctx.missing ?? "missing"}`;
  const want = (expected as Record<string, string>)[top] ?? issue.message;
  return fail(`${ctx.prefix ?? ""}${label} ${got}; expected ${want} — ${ctx.fix}`);
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = obj;
  for (const p of path) v = isJsonObject(v) || Array.isArray(v) ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

/** A value as JSON text for a message, capped at `max` characters (deep or cyclic values are named, not printed). */
export function shownJson(value: unknown, max = 80): string {
  let text: string;
  try {
    // JSON has no BigInt (GGUF's 64-bit values are BigInts): print those as plain integers.
    text = String(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v)) ?? value);
  } catch {
    text = Array.isArray(value) ? "[array]" : "{object}";
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
