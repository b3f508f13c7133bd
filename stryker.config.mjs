// Mutation testing (Stryker) of one folder at a time; bench/mutation.mjs sets MUTATION_NAME,
// MUTATION_MUTATE (globs) and MUTATION_TESTS (the test files that cover them) and runs this.
// Never part of `npm test`.

const name = process.env.MUTATION_NAME ?? "all";
const mutate = (process.env.MUTATION_MUTATE ?? "").split(",").filter(Boolean);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: "npm",
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  coverageAnalysis: "perTest",
  mutate,
  // The shared machine has 2 cores and ONNX Runtime sessions use both: one mutant at a time.
  concurrency: 1,
  timeoutMS: 60_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 20,
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  reporters: ["json", "clear-text", "progress-append-only"],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  // Tests find ../shared beside the checkout; bench/mutation.mjs links it beside the sandboxes, so
  // the temp dir must outlive the run (the script deletes the sandboxes itself).
  cleanTempDir: false,
  ignorePatterns: ["dist", "runs", "bench/.cache", "reports"],
};
