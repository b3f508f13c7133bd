// When a run has diverged. Before this, `--lr 1e3` ended with the loss stuck at ln(vocab) — the
// model predicting every token alike — and the result was saved as a success.
//
// The rule, checked after every step:
// 1. non-finite: a step whose loss or gradient norm is Inf/NaN is skipped (AdamW does not move);
//    `maxSkippedInARow` such steps in a row stop the run (a transient overflow recovers, a broken
//    model does not);
// 2. collapsed to uniform: the mean loss of the last `window` steps is within `uniformMargin` (as a
//    fraction) of the uniform-prediction loss (ln vocab, ln labels) although the run started clearly
//    below it (by more than `uniformMargin` of it as well): the model has forgotten everything;
// 3. blown up: the mean loss of the last `window` steps exceeds the first step's loss by more than
//    max(`growthAbs`, `growthRel` × first loss). The first step's loss is the starting model's (it is
//    computed before any update).
// A held-out evaluation with a non-finite loss stops the run as well (the loop checks that).

import { SlimtuneError } from "../core/errors.js";

export interface DivergenceRule {
  window: number;
  maxSkippedInARow: number;
  uniformMargin: number;
  growthAbs: number;
  growthRel: number;
}

export const defaultDivergenceRule: DivergenceRule = { window: 10, maxSkippedInARow: 3, uniformMargin: 0.03, growthAbs: 1, growthRel: 0.25 };

const advice = "lower --lr (e.g. by 10×), keep --clip at 1, or check the data; the last good checkpoint is kept, nothing was published";

export class DivergenceMonitor {
  private first: number | null = null;
  private recent: number[] = [];
  private skippedInARow = 0;
  skipped = 0;

  /** `uniformLoss`: the loss of predicting every class alike (ln vocab for language modelling). */
  constructor(
    private readonly uniformLoss: number | null,
    private readonly rule: DivergenceRule = defaultDivergenceRule,
  ) {}

  /** Records step `step`'s loss; throws E_DIVERGED when the rule says the run has diverged. */
  observe(step: number, loss: number, finite: boolean): void {
    if (!finite) {
      this.skipped++;
      if (++this.skippedInARow >= this.rule.maxSkippedInARow) {
        throw new SlimtuneError("E_DIVERGED", `training diverged at step ${step}: ${this.skippedInARow} steps in a row had a non-finite loss or gradient (loss ${loss}); ${advice}`);
      }
      return;
    }
    this.skippedInARow = 0;
    this.first ??= loss;
    this.recent.push(loss);
    if (this.recent.length > this.rule.window) this.recent.shift();
    if (this.recent.length < this.rule.window) return;
    const mean = this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
    const u = this.uniformLoss;
    if (u !== null && u > 0 && this.first < u * (1 - this.rule.uniformMargin) && Math.abs(mean - u) <= u * this.rule.uniformMargin) {
      throw new SlimtuneError(
        "E_DIVERGED",
        `training diverged at step ${step}: the loss has stayed at ${mean.toFixed(4)} for ${this.rule.window} steps, the loss of predicting every token alike (ln ${Math.round(Math.exp(u))} = ${u.toFixed(4)}), from ${this.first.toFixed(4)} at the start; ${advice}`,
      );
    }
    const limit = this.first + Math.max(this.rule.growthAbs, this.rule.growthRel * this.first);
    if (mean > limit) {
      throw new SlimtuneError(
        "E_DIVERGED",
        `training diverged at step ${step}: the mean loss of the last ${this.rule.window} steps is ${mean.toFixed(4)}, above ${limit.toFixed(4)} (the start ${this.first.toFixed(4)} plus the allowed margin); ${advice}`,
      );
    }
  }
}
