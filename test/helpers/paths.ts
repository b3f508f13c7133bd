// Paths to the shared fixtures and a scratch-folder helper for tests.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const SHARED = path.resolve(new URL("../../../shared", import.meta.url).pathname);
export const REF_MODEL = path.join(SHARED, "models", "ref-llama-5m");
export const WIKITEXT_VALID = path.join(SHARED, "data", "wikitext-2", "valid.txt");
export const WIKITEXT_TEST = path.join(SHARED, "data", "wikitext-2", "test.txt");

export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `slimtune-${prefix}-`));
}
