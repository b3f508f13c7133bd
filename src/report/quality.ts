// The quality number a report shows, from the held-out evaluations a training run made before and
// after: accuracy when the task has one (classification), else the held-out loss.

import type { Quality } from "./types.js";

interface Evaluation {
  loss: number;
  metrics: Record<string, number>;
}

export function qualityFromEvals(before: Evaluation | null | undefined, after: Evaluation | null | undefined, on?: string): Quality | null {
  if (!before && !after) return null;
  const accuracy = (e: Evaluation | null | undefined) => (e && typeof e.metrics.accuracy === "number" ? e.metrics.accuracy : null);
  if (accuracy(after) !== null) return { metric: "accuracy", before: accuracy(before), after: accuracy(after), higherIsBetter: true, ...(on ? { on } : {}) };
  return { metric: "held-out loss", before: before?.loss ?? null, after: after?.loss ?? null, higherIsBetter: false, ...(on ? { on } : {}) };
}
