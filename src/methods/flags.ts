// The options a method owns, declared once: type, default, bounds and help text. The CLI derives
// its flags from these (camelCase key → --kebab-case flag), and the library fills defaults from
// them, so a default lives in exactly one place.

import { SlimtuneError } from "../core/errors.js";

interface FlagBase {
  description: string;
  /** The CLI name when it is not the kebab-case of the key (e.g. sigma → --gate-sigma). */
  cli?: string;
}
export interface IntFlag extends FlagBase {
  type: "int";
  default: number;
  min?: number;
}
export interface FloatFlag extends FlagBase {
  type: "float";
  default: number;
  min?: number;
}
export interface BoolFlag extends FlagBase {
  type: "boolean";
  default: boolean;
}
export interface ListFlag extends FlagBase {
  type: "list";
  default: readonly string[];
}
export interface TextFlag extends FlagBase {
  type: "string";
  default?: string;
}
export type FlagSpec = IntFlag | FloatFlag | BoolFlag | ListFlag | TextFlag;
export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<F extends FlagSpec> = F extends IntFlag | FloatFlag ? number : F extends BoolFlag ? boolean : F extends ListFlag ? string[] : string | undefined;
/** The values a method's `create` receives: one per declared flag. */
export type FlagValues<F extends FlagSpecs> = { [K in keyof F]: ValueOf<F[K]> };

export const intFlag = (def: number, description: string, opts: { min?: number; cli?: string } = {}): IntFlag => ({ type: "int", default: def, description, ...opts });
export const floatFlag = (def: number, description: string, opts: { min?: number; cli?: string } = {}): FloatFlag => ({ type: "float", default: def, description, ...opts });
export const boolFlag = (def: boolean, description: string, opts: { cli?: string } = {}): BoolFlag => ({ type: "boolean", default: def, description, ...opts });
export const listFlag = (def: readonly string[], description: string, opts: { cli?: string } = {}): ListFlag => ({ type: "list", default: def, description, ...opts });

/** The CLI name of a flag: its explicit name, or the kebab-case of its key. */
export function cliName(key: string, spec: FlagSpec): string {
  return spec.cli ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Every flag at its default. */
export function flagDefaults<F extends FlagSpecs>(flags: F): FlagValues<F> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(flags)) out[key] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  return out as FlagValues<F>;
}

/** Defaults overridden by `given`, each checked against its flag's type and bounds. */
export function withDefaults<F extends FlagSpecs>(flags: F, given: Partial<FlagValues<F>> = {}): FlagValues<F> {
  const out = flagDefaults(flags) as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) {
    const spec = flags[key];
    if (!spec) throw new SlimtuneError("E_ARG", `unknown option "${key}"; known: ${Object.keys(flags).join(", ")}`);
    if (value === undefined) continue;
    checkValue(key, spec, value);
    out[key] = value;
  }
  return out as FlagValues<F>;
}

function checkValue(key: string, spec: FlagSpec, value: unknown): void {
  const flag = `--${cliName(key, spec)}`;
  const bad = (expected: string): never => {
    throw new SlimtuneError("E_ARG", `${flag} ${JSON.stringify(value)} must be ${expected}`);
  };
  switch (spec.type) {
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value) || value < (spec.min ?? -Infinity)) bad(`an integer >= ${spec.min ?? "-∞"}`);
      break;
    case "float":
      if (typeof value !== "number" || !Number.isFinite(value) || value < (spec.min ?? -Infinity)) bad(`a number >= ${spec.min ?? "-∞"}`);
      break;
    case "boolean":
      if (typeof value !== "boolean") bad("true or false");
      break;
    case "list":
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) bad("a list of names");
      break;
    case "string":
      if (typeof value !== "string") bad("a string");
      break;
  }
}
