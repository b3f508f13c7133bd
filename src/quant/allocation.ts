// The starting point of mixed precision: each unit's sensitivity to each bit width, and the
// allocation that minimises the summed sensitivity under the budget.
//
// Sensitivity is the Fisher-weighted quantization error (the second-order term of the loss change,
// as in HAWQ-V2 and Fisher-based mixed precision): ΔL_u(b) ≈ ½ Σ_{w ∈ u} F_w · (w − Q_b(w))², with
// F the mean squared per-batch gradient of the task loss (an empirical Fisher diagonal) and Q_b the
// unit's own quantizer at b bits. QPruner uses mutual information between a layer and the task; the
// Fisher term is the documented alternative we use, measured on the same task data.

import type { FloatWeights } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { type Allocation, type Budget, type BudgetModel, budgetCost, checkBudget, fitsBudget } from "./budget.js";
import { dequantize, quantizeLinear } from "./kinds/index.js";

/** sensitivity[u][c]: estimated loss increase of unit u at bm.choices[c]. */
export function fisherSensitivity(model: FloatWeights, bm: BudgetModel, fisher: ReadonlyMap<string, Float32Array>): number[][] {
  return bm.units.map((u) =>
    bm.choices.map((bits) => {
      let total = 0;
      for (const l of u.layers) {
        const w = model.weights.get(`${l.path}.weight`)!;
        const f = fisher.get(`${l.path}.weight`);
        if (!f) throw new SlimtuneError("E_ARG", `no Fisher information for "${l.path}.weight"`);
        const q = dequantize(quantizeLinear(w.data, l.outFeatures, l.inFeatures, { ...bm.base, bits }, { layer: l.path }));
        for (let i = 0; i < q.length; i++) {
          const d = w.data[i]! - q[i]!;
          total += f[i]! * d * d;
        }
      }
      return 0.5 * total;
    }),
  );
}

/**
 * Minimises Σ sensitivity under the budget by greedy upgrades (the classic multiple-choice knapsack
 * heuristic): start with every unit at the narrowest width, then repeatedly take the upgrade with
 * the largest loss decrease per unit of cost that still fits, until none fits.
 */
export function greedyAllocation(bm: BudgetModel, budget: Budget, sensitivity: readonly number[][]): Allocation {
  checkBudget(bm, budget);
  const level = bm.units.map(() => 0);
  const alloc = (): Allocation => level.map((c) => bm.choices[c]!);
  for (;;) {
    const cost = budgetCost(bm, budget, alloc());
    let best: { u: number; c: number; rate: number } | null = null;
    for (let u = 0; u < level.length; u++) {
      for (let c = level[u]! + 1; c < bm.choices.length; c++) {
        const trial = alloc();
        trial[u] = bm.choices[c]!;
        if (!fitsBudget(bm, budget, trial)) continue;
        const gain = sensitivity[u]![level[u]!]! - sensitivity[u]![c]!;
        const rate = gain / Math.max(budgetCost(bm, budget, trial) - cost, 1e-12);
        if (!best || rate > best.rate) best = { u, c, rate };
      }
    }
    if (!best) return alloc();
    level[best.u] = best.c;
  }
}
