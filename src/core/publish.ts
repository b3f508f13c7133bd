// Publishing results into a folder that may also hold a run's state (checkpoint, metrics):
// files are built in a temp sibling folder, then each is renamed into place, so no file is ever
// seen half-written and the run state beside them survives.

import fs from "node:fs";
import path from "node:path";
import { tempSiblingPrefix } from "./output.js";

export function publishInto(outDir: string, build: (tmpDir: string) => void): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  const tmpDir = fs.mkdtempSync(tempSiblingPrefix(outDir, "publish"));
  try {
    // build() may replace tmpDir wholesale (replaceDirAtomic), so only its final contents count.
    build(tmpDir);
    const files = fs.readdirSync(tmpDir);
    for (const f of files) {
      const target = path.join(outDir, f);
      if (fs.statSync(path.join(tmpDir, f)).isDirectory()) fs.rmSync(target, { recursive: true, force: true });
      fs.renameSync(path.join(tmpDir, f), target);
    }
    return files;
  } finally {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}
