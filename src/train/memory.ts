// A memory estimate checked before training starts: `--batch 512 --seq 1024` used to grow past
// 8 GiB before anything said no. The estimate itself is in memory-estimate.ts (no node:*, so the
// web page shares it); this checks it against the memory free now.

import os from "node:os";
import { SlimtuneError } from "../core/errors.js";
import { type MemoryEstimate, type MemoryInputs, estimateTrainingMemory } from "./memory-estimate.js";

export { estimateTrainingMemory, type MemoryEstimate, type MemoryInputs } from "./memory-estimate.js";

const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;

/** E_MEMORY when the estimate exceeds the memory available now; `available` for tests. */
export function checkTrainingMemory(m: MemoryInputs, available = os.freemem()): MemoryEstimate {
  const e = estimateTrainingMemory(m);
  if (e.totalBytes > available) {
    const fixes = ["a smaller --batch (with --accumulate to keep the tokens per step)", "a smaller --seq"];
    if (!m.checkpointActivations) fixes.push("--checkpoint-activations");
    throw new SlimtuneError(
      "E_MEMORY",
      `this run needs at least ${gib(e.totalBytes)} (weights ${gib(e.weightsBytes)}, optimizer ${gib(e.optimizerBytes)}, activations ${gib(e.activationBytes)}, logits ${gib(e.logitsBytes)} at --batch ${m.batch} --seq ${m.seq}) but ${gib(available)} is free; use ${fixes.join(", or ")}`,
    );
  }
  return e;
}

export interface CheckpointPlan {
  checkpointActivations: boolean;
  /** What was decided and why, for the run's log; null when the user's choice stands unchanged. */
  note: string | null;
  estimate: MemoryEstimate;
}

/**
 * Whether the run keeps every activation or recomputes them: a run that would not fit with every
 * activation kept gets --checkpoint-activations by itself (about one more forward per step beats
 * refusing the run). Still E_MEMORY when even the checkpointed run does not fit.
 */
export function planCheckpointing(m: Omit<MemoryInputs, "checkpointActivations">, wanted: boolean, available = os.freemem()): CheckpointPlan {
  if (!wanted) {
    const kept = estimateTrainingMemory({ ...m, checkpointActivations: false });
    if (kept.totalBytes > available) {
      const estimate = checkTrainingMemory({ ...m, checkpointActivations: true }, available);
      const note = `activations checkpointed: estimate ${gib(kept.totalBytes)} > available ${gib(available)} with every activation kept (${gib(estimate.totalBytes)} checkpointed; about one more forward per step)`;
      return { checkpointActivations: true, note, estimate };
    }
  }
  return { checkpointActivations: wanted, note: null, estimate: checkTrainingMemory({ ...m, checkpointActivations: wanted }, available) };
}
