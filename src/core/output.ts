// The user's files are sacred: an output path is claimed before any work starts. A folder must be
// absent, empty, or one slimtune wrote (it holds the marker file below); anything else needs
// --overwrite, and even then the old folder is replaced only once the new result is complete. An
// existing output file is never replaced without --overwrite. Temp folders that an interrupted run
// left beside an output are removed here, so a later run never trips over them.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError, quote } from "./errors.js";
import { withIo } from "./io.js";
import { processAlive } from "./process-alive.js";

/** Marks a folder as slimtune's output; its presence is what allows a later run to reuse the folder. */
export const OUTPUT_MARKER = ".slimtune-output";

export type FolderState = "created" | "empty" | "ours" | "foreign";

export interface ClaimOptions {
  /** The flag that named the path, for messages (default "--out"). */
  flag?: string;
  overwrite: boolean;
  /** Inputs by flag name (e.g. ["model", dir]) that the output must not be, nor contain. */
  inputs?: ReadonlyArray<readonly [string, string]>;
}

function refuseInputs(target: string, flag: string, inputs: ClaimOptions["inputs"]): void {
  const t = path.resolve(target);
  for (const [name, input] of inputs ?? []) {
    const i = path.resolve(input);
    if (t === i) throw new SlimtuneError("E_ARG", `${flag} ${quote(target)} is the --${name} ${name === "model" || name === "adapter" ? "folder" : "path"}; write the result to a new ${name === "model" || name === "adapter" ? "folder" : "path"}`);
    if (i.startsWith(`${t}${path.sep}`)) throw new SlimtuneError("E_ARG", `${flag} ${quote(target)} holds the --${name} input ${quote(input)}; write the result somewhere else`);
  }
}

/** Writes the marker into a folder slimtune owns. */
export function markOutputFolder(dir: string): void {
  withIo(dir, "write into the output folder", () =>
    fs.writeFileSync(path.join(dir, OUTPUT_MARKER), `${JSON.stringify({ written_by: "slimtune", note: "this folder was written by slimtune; slimtune may replace what is in it" })}\n`),
  );
}

export function isOurFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, OUTPUT_MARKER));
}

/**
 * Claims `dir` as an output folder. Creates it (and missing parents) when absent and marks it.
 * Returns what was there: a "foreign" folder is only returned with `overwrite`, and the caller must
 * not write into it before the new result is complete.
 */
export function claimOutputFolder(dir: string, opts: ClaimOptions): FolderState {
  const flag = opts.flag ?? "--out";
  refuseInputs(dir, flag, opts.inputs);
  const st = withIo(dir, "inspect the output path", () => fs.statSync(dir, { throwIfNoEntry: false }));
  removeStaleTemps(dir);
  if (!st) {
    withIo(dir, "create the output folder", () => fs.mkdirSync(dir, { recursive: true }));
    markOutputFolder(dir);
    return "created";
  }
  if (!st.isDirectory()) {
    throw new SlimtuneError("E_ARG", `${flag} is an existing file, not a folder; choose a folder path (slimtune never replaces a file of yours with a folder)`, dir);
  }
  const entries = withIo(dir, "list the output folder", () => fs.readdirSync(dir));
  if (entries.length === 0) {
    markOutputFolder(dir);
    return "empty";
  }
  if (entries.includes(OUTPUT_MARKER)) return "ours";
  if (!opts.overwrite) {
    const shown = entries.slice(0, 3).map((e) => quote(e, 40)).join(", ");
    throw new SlimtuneError(
      "E_ARG",
      `${flag} holds files slimtune did not write (${shown}${entries.length > 3 ? `, and ${entries.length - 3} more` : ""}); choose a new or empty folder, or pass --overwrite to replace the folder once the new result is complete`,
      dir,
    );
  }
  return "foreign";
}

/** Claims `file` as an output file: absent (its folder is created), or replaced only with --overwrite. */
export function claimOutputFile(file: string, opts: ClaimOptions): void {
  const flag = opts.flag ?? "--out";
  refuseInputs(file, flag, opts.inputs);
  const st = withIo(file, "inspect the output path", () => fs.statSync(file, { throwIfNoEntry: false }));
  removeStaleTemps(file);
  if (st?.isDirectory()) throw new SlimtuneError("E_ARG", `${flag} is a folder; give the path of the file to write`, file);
  if (st && !opts.overwrite) throw new SlimtuneError("E_ARG", `${flag} exists; choose a new file name, or pass --overwrite to replace it once the new file is complete`, file);
  if (st && !st.isFile()) throw new SlimtuneError("E_IO", `${flag} is not a regular file (a FIFO, socket or device); choose an ordinary file path`, file);
  // The writer creates a missing parent folder when it has a result to write, not before.
}

// Temp siblings written by core/atomic.ts, core/publish.ts and the recipes all read
// `.<name>.<tag>-<pid>-<random>`; one whose process is gone is left over from an interrupted run.
const TEMP_TAGS = ["tmp", "old", "publish", "qpruner", "pa", "staging"];

/** Removes temp siblings of `target` left by runs that no longer exist; returns their names. */
export function removeStaleTemps(target: string): string[] {
  const dir = path.dirname(path.resolve(target));
  const prefix = `.${path.basename(target)}.`;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^([a-z]+)-(\d+)-/.exec(name.slice(prefix.length));
    if (!m || !TEMP_TAGS.includes(m[1]!) || processAlive(Number(m[2]))) continue;
    fs.rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** A temp sibling name with this process's pid, which removeStaleTemps recognises. */
export function tempSiblingPrefix(target: string, tag: (typeof TEMP_TAGS)[number]): string {
  return path.join(path.dirname(path.resolve(target)), `.${path.basename(target)}.${tag}-${process.pid}-`);
}
