// Strict flags: citty (like minimist) ignores a flag it does not know, so `--stpes 5` trained the
// default 100 steps. Every command line is checked against the command's declared flags before it
// runs: an unknown flag, a flag given twice with different values, a value given to a boolean flag,
// a value-taking flag left without one, or a stray word is E_ARG naming the flag (and the closest
// known one).

import type { ArgsDef } from "citty";
import { SlimtuneError, quote } from "../core/errors.js";

export interface FlagUse {
  name: string;
  value: string | boolean;
}

/** Levenshtein distance, for "did you mean". Short strings only (flag names). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known name closest to `name`, when it is close enough to be a likely typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  const normalised = name.replace(/_/g, "-").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = Math.min(editDistance(name, k), editDistance(normalised, k));
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

function didYouMean(name: string, known: readonly string[]): string {
  const near = closest(name, known);
  return near ? `; did you mean --${near}?` : "; see --help for the flags this command takes";
}

/**
 * Checks `argv` (the words after the command name) against `args` and returns the flags used.
 * `command` names the command in messages. `variadic`: the last positional takes any number of words
 * (`slimtune report RUN…`).
 */
export function checkFlags(command: string, argv: readonly string[], args: ArgsDef, variadic = false): FlagUse[] {
  const defs = new Map(Object.entries(args).filter(([, d]) => d.type !== "positional"));
  const declared = Object.entries(args).filter(([, d]) => d.type === "positional").length;
  const positionals = variadic && declared > 0 ? Infinity : declared;
  const known = [...defs.keys()];
  const seen = new Map<string, string | boolean>();
  const uses: FlagUse[] = [];
  let stray = 0;
  const record = (name: string, value: string | boolean) => {
    const prior = seen.get(name);
    if (prior !== undefined && prior !== value) {
      throw new SlimtuneError("E_ARG", `--${name} is given twice with different values (${quote(String(prior))} and ${quote(String(value))}); give it once`);
    }
    seen.set(name, value);
    uses.push({ name, value });
  };
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      stray += argv.length - i - 1;
      break;
    }
    if (!word.startsWith("-") || /^-\d/.test(word)) {
      if (++stray > positionals) {
        throw new SlimtuneError("E_ARG", `${command} takes no argument ${quote(word)} here; values follow their flag (e.g. --steps 5), and booleans such as --json take none`);
      }
      continue;
    }
    const eq = word.indexOf("=");
    const raw = word.replace(/^--?/, "");
    const name = eq >= 0 ? raw.slice(0, raw.indexOf("=")) : raw;
    const inline = eq >= 0 ? word.slice(eq + 1) : undefined;
    if (!word.startsWith("--")) {
      throw new SlimtuneError("E_ARG", `unknown flag ${quote(word)} for ${command}: flags start with two dashes${didYouMean(name, known)}`);
    }
    const def = defs.get(name);
    if (!def && name.startsWith("no-") && defs.get(name.slice(3))?.type === "boolean" && inline === undefined) {
      record(name.slice(3), false);
      continue;
    }
    if (!def) throw new SlimtuneError("E_ARG", `unknown flag --${name} for ${command}${didYouMean(name, known)}`);
    if (def.type === "boolean") {
      if (inline !== undefined) throw new SlimtuneError("E_ARG", `--${name} is a switch and takes no value (got ${quote(inline)}); write --${name} alone, or --no-${name}`);
      record(name, true);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new SlimtuneError("E_ARG", `--${name} needs a value (e.g. --${name} ${def.default ?? "VALUE"})`);
      value = next;
      i++;
    }
    record(name, value);
  }
  return uses;
}
