// Bytes of every file a recipe wrote, by path relative to its output folder ("adapter/…" for files
// in sub-folders), for summaries.

import fs from "node:fs";
import path from "node:path";

export function folderSizes(root: string): Record<string, number> {
  const files: Record<string, number> = {};
  const walk = (dir: string, prefix: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${prefix}${e.name}/`);
      else files[`${prefix}${e.name}`] = fs.statSync(path.join(dir, e.name)).size;
    }
  };
  walk(root, "");
  return files;
}
