// The training log of a recipe's final training run, carried from its work folder (deleted when the
// recipe ends) into the published folder, so the run's report can draw its loss and held-out curves.

import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic.js";

export const METRICS_FILE = "metrics.jsonl";

/** The metrics.jsonl a training run left in `runDir`, or null when it wrote none. */
export function readTrainingMetrics(runDir: string): string | null {
  const file = path.join(runDir, METRICS_FILE);
  return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : null;
}

/** Writes the kept log into the folder being published (nothing when there was none). */
export function keepTrainingMetrics(outDir: string, metrics: string | null): void {
  if (metrics !== null) writeFileAtomic(path.join(outDir, METRICS_FILE), metrics);
}
