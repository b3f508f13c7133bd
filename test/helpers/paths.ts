// Paths to the shared fixtures and a scratch-folder helper for tests.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const SHARED = path.resolve(new URL("../../../shared", import.meta.url).pathname);
export const REF_MODEL = path.join(SHARED, "models", "ref-llama-5m");
export const WIKITEXT_VALID = path.join(SHARED, "data", "wikitext-2", "valid.txt");
export const WIKITEXT_TEST = path.join(SHARED, "data", "wikitext-2", "test.txt");

// Folders made by scratchDir during one test file. The registry lives on globalThis, not in this module, so that the
// setup file (test/helpers/remove-scratch.ts) sees the same list even if a test file loads this module on its own.
const REGISTRY = Symbol.for("slimtune.test.scratchDirs");
type WithRegistry = typeof globalThis & { [REGISTRY]?: string[] };

function scratchRegistry(): string[] {
  const g = globalThis as WithRegistry;
  return (g[REGISTRY] ??= []);
}

/** A fresh temp folder, removed after the test file that made it (by test/helpers/remove-scratch.ts). */
export function scratchDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `slimtune-${prefix}-`));
  scratchRegistry().push(dir);
  return dir;
}

/** Removes every folder scratchDir made so far; returns how many. */
export function removeScratchDirs(): number {
  const dirs = scratchRegistry().splice(0);
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  return dirs.length;
}
