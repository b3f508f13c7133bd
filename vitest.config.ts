import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/helpers/remove-scratch.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // ORT sessions use both cores; running test files in parallel only makes them fight.
    fileParallelism: false,
  },
});
