// What `main.ts` tells a command about its --out, through citty's context `data`.

import type { FolderState } from "../core/output.js";

export interface OutputContext {
  /** What --out held before this run ("file" for commands that write one file). */
  outputState?: FolderState | "file";
}
