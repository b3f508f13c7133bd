// The commands a recipe stage may run, with the flag table each is checked against (the command's
// own) and what it writes.

import type { ArgsDef, CommandDef } from "citty";

export type StageOutput = "folder" | "file" | "eval";

interface StageCommand {
  load: () => Promise<{ default: unknown }>;
  /** What the stage writes under the run's output root. */
  output: (options: Record<string, string | number | boolean>) => StageOutput;
}

export const STAGE_COMMANDS: Record<string, StageCommand> = {
  quantize: { load: () => import("../commands/quantize.js"), output: () => "folder" },
  prune: { load: () => import("../commands/prune.js"), output: () => "folder" },
  finetune: { load: () => import("../commands/finetune.js"), output: () => "folder" },
  "pruning-adapter": { load: () => import("../commands/pruning-adapter.js"), output: () => "folder" },
  qpruner: { load: () => import("../commands/qpruner.js"), output: () => "folder" },
  export: { load: () => import("../commands/export.js"), output: (o) => (String(o.format ?? "gguf") === "gguf" ? "file" : "folder") },
  eval: { load: () => import("../commands/eval.js"), output: () => "eval" },
};

/** Flags the runner sets itself: a recipe that sets them would fight it. */
export const RUNNER_FLAGS = new Set(["out", "json", "overwrite", "resume"]);

/** A stage command's flag table (the same one its command line is checked against). */
export async function stageArgs(command: string): Promise<ArgsDef> {
  const mod = await STAGE_COMMANDS[command]!.load();
  const def = mod.default as CommandDef;
  const args = typeof def.args === "function" ? await def.args() : def.args;
  return (args ?? {}) as ArgsDef;
}
