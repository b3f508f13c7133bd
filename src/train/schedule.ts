// Learning rate per step: linear warm-up to the peak, then cosine decay to peak * minRatio.

import { SlimtuneError } from "../core/errors.js";

export interface ScheduleOptions {
  peak: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of the peak; default 0.1. */
  minRatio?: number;
}

/** `step` is 0-based; the decay reaches peak * minRatio at `totalSteps` and stays there. */
export function learningRateAt(step: number, opts: ScheduleOptions): number {
  const { peak, warmupSteps, totalSteps } = opts;
  const minRatio = opts.minRatio ?? 0.1;
  if (!(Number.isFinite(peak) && peak >= 0)) {
    throw new SlimtuneError("E_ARG", `learning rate ${peak} must be a finite number >= 0; pass e.g. --lr 1e-4`);
  }
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0 && warmupSteps <= totalSteps)) {
    throw new SlimtuneError(
      "E_ARG",
      `warm-up steps ${warmupSteps} must be an integer in [0, ${totalSteps}] (the total steps); lower --warmup or raise --steps`,
    );
  }
  if (!(minRatio >= 0 && minRatio <= 1)) {
    throw new SlimtuneError("E_ARG", `minimum learning-rate ratio ${minRatio} must be in [0, 1]`);
  }
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const decaySteps = totalSteps - warmupSteps;
  const minLr = peak * minRatio;
  if (decaySteps === 0 || step >= totalSteps) return minLr;
  const progress = (step - warmupSteps) / decaySteps;
  return minLr + (peak - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
