// The vitest config Stryker runs (bench/mutation.mjs): only the test files that cover the folder
// under mutation, named in MUTATION_TESTS (comma-separated), so each mutant runs just those.

import { defineConfig } from "vitest/config";

const include = (process.env.MUTATION_TESTS ?? "").split(",").filter(Boolean);
if (include.length === 0) throw new Error("MUTATION_TESTS is empty; run mutation testing through bench/mutation.mjs");

export default defineConfig({
  test: {
    include,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
