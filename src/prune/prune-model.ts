// Structured pruning of a float model in one call: score every dependency group, plan what each
// layer keeps under the ratio schedule, and cut the rest out with the shared surgery.

import { assertPrunable } from "../arch/llama/groups.js";
import type { LlamaModel } from "../models/llama/model.js";
import type { LossSource } from "./gradients.js";
import { type ImportanceKind, type ImportanceResult, type TaylorVariant, groupImportance } from "./importance.js";
import { type PlanOptions, type PrunePlan, checkPlanOptions, planPruning } from "./plan.js";
import { type PruneReport, removeStructure } from "./surgery.js";

export interface PruneOptions extends PlanOptions {
  importance: ImportanceKind;
  taylor: TaylorVariant;
  /** Loss for taylor and task-gradient (LM windows or labelled examples). */
  source?: LossSource;
  samples: number;
  seed: number;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface PruneResult {
  model: LlamaModel;
  report: PruneReport;
  plan: PrunePlan;
  importance: ImportanceResult;
}

export async function pruneModel(model: LlamaModel, opts: PruneOptions): Promise<PruneResult> {
  // Bad schedule options and unprunable models fail before any gradient is taken.
  assertPrunable(model.config, "structured pruning");
  checkPlanOptions(model.config, opts);
  const importance = await groupImportance(model, {
    kind: opts.importance,
    taylor: opts.taylor,
    source: opts.source,
    samples: opts.samples,
    seed: opts.seed,
    threads: opts.threads,
    onProgress: opts.onProgress,
  });
  const plan = planPruning(model.config, importance.scores, opts);
  const { model: pruned, report } = removeStructure(model, plan.keep);
  return { model: pruned, report, plan, importance };
}
