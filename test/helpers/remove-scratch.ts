// Vitest setup file: after each test file, remove the scratch folders its tests made (test/helpers/paths.ts).
// Without it every run of the suite left ~200 folders (up to 600 MB each) in the system temp folder.

import { afterAll } from "vitest";
import { removeScratchDirs } from "./paths.js";

afterAll(() => {
  removeScratchDirs();
});
