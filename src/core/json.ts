// Reading JSON files the project depends on (configs, adapters, checkpoints) through zod schemas,
// so a missing or mistyped field is a typed error naming the file, the field and what was expected,
// never a TypeError deep inside.

import fs from "node:fs";
import { z } from "zod";
import { SlimtuneError, type SlimtuneErrorCode } from "./errors.js";

export interface JsonReadOptions {
  /** Error code for a file that is not valid JSON or not an object (default E_CONFIG). */
  code?: SlimtuneErrorCode;
  /** What to do when the file is missing (after "does not exist; "). */
  missingFix: string;
  /** What to do when it is not valid JSON (after "is not valid JSON (…); "). */
  invalidFix?: string;
}

/** Reads a file that must hold one JSON object. */
export function readJsonObject(file: string, opts: JsonReadOptions): Record<string, unknown> {
  const code = opts.code ?? "E_CONFIG";
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "ENOENT") throw new SlimtuneError("E_NOT_FOUND", `does not exist; ${opts.missingFix}`, file);
    if (e.code === "EISDIR") throw new SlimtuneError("E_NOT_FOUND", `is a folder, expected a JSON file; ${opts.missingFix}`, file);
    throw new SlimtuneError(code, `cannot be read (${e.message})`, file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SlimtuneError(code, `is not valid JSON (${(err as Error).message}); ${opts.invalidFix ?? "re-create it"}`, file);
  }
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
  const label = (ctx.label ?? ((f: string) => `"${f}"`))(where);
  const got = Object.hasOwn(obj, top) ? `is ${JSON.stringify(valueAt(obj, issue.path))}` : `is ${ctx.missing ?? "missing"}`;
  const want = (expected as Record<string, string>)[top] ?? issue.message;
  return fail(`${ctx.prefix ?? ""}${label} ${got}; expected ${want} — ${ctx.fix}`);
}

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = obj;
  for (const p of path) v = isJsonObject(v) || Array.isArray(v) ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}
