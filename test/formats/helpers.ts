// Shared test fixtures for format tests: paths into ../shared and throwaway temp folders.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { scratchDir } from "../helpers/paths.js";
import type { SlimtuneErrorCode } from "../../src/core/errors.js";

export const sharedDir = fileURLToPath(new URL("../../../shared/", import.meta.url));
export const refModelDir = path.join(sharedDir, "models/ref-llama-5m");
export const wikitextTest = path.join(sharedDir, "data/wikitext-2/test.txt");

/**
 * A fresh temp folder for this test file, removed after all its tests. It goes through scratchDir's
 * registry (emptied by test/helpers/remove-scratch.ts): an afterAll registered from inside a running
 * test never ran, and left such folders behind.
 */
export function tempDir(prefix: string): string {
  return scratchDir(prefix);
}

/** Runs `fn`, expecting a SlimtuneError with `code` whose message contains every string in `mentions`. */
export function expectSlimtuneError(fn: () => unknown, code: SlimtuneErrorCode, ...mentions: string[]): SlimtuneError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SlimtuneError);
  const err = caught as SlimtuneError;
  expect(err.code).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
  return err;
}
