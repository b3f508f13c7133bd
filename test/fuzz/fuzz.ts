// The property every reader's fuzz test checks: for mutated valid files (bench/fuzz/mutate.mjs),
// loading ends in a SlimtuneError with a code or a valid load — never a crash, a RangeError, a
// TypeError or a hang. fast-check shrinks any counterexample to a minimal mutation.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareReader, type PreparedReader } from "../../bench/fuzz/readers.mjs";
import { srcLib } from "./lib.js";

/** Seeds are fixed (one per reader) so a failure reproduces; the benchmark (bench/fuzz-readers.mjs) explores further. */
export function fuzzReader(name: string, numRuns: number, seed = [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) | 0, 15)): void {
  describe(`${name}: mutated files load or fail with a typed error`, () => {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `slimtune-fuzz-${name}-`));
    let reader: PreparedReader;
    const outcomes = new Map<string, number>();
    beforeAll(async () => {
      reader = await prepareReader(srcLib, fc, name, workDir);
    });
    afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

    it(`${numRuns} mutations: only SlimtuneError codes or valid loads`, async () => {
      await fc.assert(
        fc.asyncProperty(reader.arbitrary, async (m) => {
          const outcome = await reader.run(m, path.join(workDir, "case"));
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          expect(outcome).toMatch(/^(accepted|E_[A-Z_]+)$/);
        }),
        { numRuns, seed },
      );
      console.log(`${name}: ${[...outcomes].sort(([, a], [, b]) => b - a).map(([k, v]) => `${k} ${v}`).join(", ")}`);
      // A fuzzer that never gets past the first check proves little: most mutations must be refused by a typed error.
      expect([...outcomes.keys()].some((k) => k.startsWith("E_"))).toBe(true);
    });
  });
}
