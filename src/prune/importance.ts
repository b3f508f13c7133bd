// Importance of every dependency group (attention head, key/value group, MLP channel), the scores a
// pruning plan ranks. Each score sums over the group's slices (arch/llama/groups.ts):
//
// - taylor, element-wise (LLM-Pruner's "param_first"): Σ_slices Σ_elements |w · ḡ|, with ḡ the mean
//   gradient of the loss over the calibration batches — the first-order estimate of how much the
//   loss moves when each weight is set to zero.
// - taylor, vector-wise (LLM-Pruner's "vectorize"): Σ_slices |Σ_elements w · ḡ| — the first-order
//   change of the loss when a whole slice (one module's rows or columns of the group) is removed.
// - task-gradient (Pruning-Adapter, after Michel et al. 2019): a mask ξ on the group's output,
//   I = mean over batches of |∂L_batch/∂ξ|. ∂L/∂ξ is Σ w · g over the columns of o_proj (a head)
//   or down_proj (a channel) that carry the group's output, taken per batch before the absolute
//   value, so groups whose effect changes sign from batch to batch still count.
// - l2: Σ_slices ‖w‖² (the squared magnitude; ranking is the same as for ‖w‖).
// - random: a seeded uniform draw per group (the baseline every paper compares against).
//
// Scores are kept additive over slices so that a key/value group's score is its own k/v rows plus
// the heads that read it: kvGroup(g) = kvOwn[g] + Σ_{h ∈ g} head[h].

import { layerShape } from "../arch/llama/config.js";
import type { LlamaConfig } from "../arch/llama/config.js";
import { type Slice, channelSlices, headSlices, headsPerKvGroup } from "../arch/llama/groups.js";
import { linearPath } from "../arch/llama/shapes.js";
import type { FloatWeights, HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { type GradientStats, type LossSource, accumulateGradients } from "./gradients.js";

export const importanceKinds = ["taylor", "task-gradient", "l2", "random"] as const;
export type ImportanceKind = (typeof importanceKinds)[number];
export const taylorVariants = ["element", "vector"] as const;
export type TaylorVariant = (typeof taylorVariants)[number];

/** Scores of one layer's groups, by original index within the layer. */
export interface LayerScores {
  heads: Float64Array;
  /** The key/value rows of each group alone (its heads are scored in `heads`). */
  kvOwn: Float64Array;
  channels: Float64Array;
}

/** A key/value group's score: its own rows plus every head that reads it. */
export function kvGroupScore(config: LlamaConfig, layer: number, s: LayerScores, g: number): number {
  const rep = headsPerKvGroup(config, layer);
  let total = s.kvOwn[g]!;
  for (let r = 0; r < rep; r++) total += s.heads[g * rep + r]!;
  return total;
}

/** Σ over the elements of one slice of f(w, extra) (extra: the gradient, or nothing). */
function sliceSum(w: HostParam, slice: Slice, f: (w: number, i: number) => number): number {
  const [, K] = w.shape as [number, number];
  let s = 0;
  if (slice.axis === 0) {
    const from = slice.start * K;
    const to = (slice.start + slice.count) * K;
    for (let i = from; i < to; i++) s += f(w.data[i]!, i);
  } else {
    const N = w.shape[0]!;
    for (let n = 0; n < N; n++) {
      const row = n * K;
      for (let k = slice.start; k < slice.start + slice.count; k++) s += f(w.data[row + k]!, row + k);
    }
  }
  return s;
}

/** Scores every group of every layer by summing `score(slice)` over its slices. */
export function scoreGroups(config: LlamaConfig, score: (slice: Slice) => number): LayerScores[] {
  const D = config.headDim;
  return Array.from({ length: config.numLayers }, (_, i) => {
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    const heads = Float64Array.from({ length: H }, (_, h) => headSlices(config, i, h).reduce((s, sl) => s + score(sl), 0));
    const own = (g: number): Slice[] => [
      { path: linearPath(i, "k_proj"), module: "k_proj", axis: 0, start: g * D, count: D },
      { path: linearPath(i, "v_proj"), module: "v_proj", axis: 0, start: g * D, count: D },
    ];
    const kvOwn = Float64Array.from({ length: KV }, (_, g) => own(g).reduce((s, sl) => s + score(sl), 0));
    const channels = Float64Array.from({ length: F }, (_, j) => channelSlices(i, j).reduce((s, sl) => s + score(sl), 0));
    return { heads, kvOwn, channels };
  });
}

const weightOf = (model: FloatWeights, slice: Slice): HostParam => {
  const w = model.weights.get(`${slice.path}.weight`);
  if (!w) throw new SlimtuneError("E_ARG", `the model has no weight "${slice.path}.weight"`);
  return w;
};

/** Taylor importance from mean gradients (element-wise or vector-wise). */
export function taylorScores(model: FloatWeights, grads: GradientStats, variant: TaylorVariant): LayerScores[] {
  return scoreGroups(model.config, (slice) => {
    const w = weightOf(model, slice);
    const g = grads.mean.get(`${slice.path}.weight`)!;
    if (variant === "element") return sliceSum(w, slice, (x, i) => Math.abs(x * g[i]!));
    return Math.abs(sliceSum(w, slice, (x, i) => x * g[i]!));
  });
}

/** Squared L2 magnitude of each group. */
export function l2Scores(model: FloatWeights): LayerScores[] {
  return scoreGroups(model.config, (slice) => sliceSum(weightOf(model, slice), slice, (x) => x * x));
}

/** A seeded uniform score per group. */
export function randomScores(config: LlamaConfig, seed: number): LayerScores[] {
  const rng = new Rng(seed);
  return Array.from({ length: config.numLayers }, (_, i) => {
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    const draw = (n: number) => Float64Array.from({ length: n }, () => rng.uniform());
    return { heads: draw(H), kvOwn: new Float64Array(KV), channels: draw(F) };
  });
}

/**
 * Accumulates task-gradient importance batch by batch: for each group, |∂L_batch/∂ξ| where ξ masks
 * the group's output; `finish` returns the mean over the batches seen.
 */
export function taskGradientAccumulator(model: FloatWeights): { onBatch: (grads: ReadonlyMap<string, Float32Array>) => void; finish: () => LayerScores[] } {
  const config = model.config;
  const D = config.headDim;
  const totals = scoreGroups(config, () => 0);
  let batches = 0;
  const onBatch = (grads: ReadonlyMap<string, Float32Array>) => {
    batches++;
    for (let i = 0; i < config.numLayers; i++) {
      const t = totals[i]!;
      const maskGrad = (module: "o_proj" | "down_proj", start: number, count: number) => {
        const slice: Slice = { path: linearPath(i, module), module, axis: 1, start, count };
        const g = grads.get(`${slice.path}.weight`)!;
        return Math.abs(sliceSum(weightOf(model, slice), slice, (x, j) => x * g[j]!));
      };
      for (let h = 0; h < t.heads.length; h++) t.heads[h]! += maskGrad("o_proj", h * D, D);
      for (let j = 0; j < t.channels.length; j++) t.channels[j]! += maskGrad("down_proj", j, 1);
    }
  };
  const finish = () => {
    if (batches === 0) throw new SlimtuneError("E_ARG", "task-gradient importance saw no batches");
    for (const t of totals) for (const a of [t.heads, t.channels]) for (let j = 0; j < a.length; j++) a[j]! /= batches;
    return totals;
  };
  return { onBatch, finish };
}

export interface ImportanceOptions {
  kind: ImportanceKind;
  /** Taylor only: element-wise (default) or vector-wise. */
  taylor?: TaylorVariant;
  /** The loss that taylor and task-gradient differentiate (unused by l2 and random). */
  source?: LossSource;
  samples: number;
  seed: number;
  threads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ImportanceResult {
  scores: LayerScores[];
  /** Mean calibration loss, when gradients were taken. */
  loss: number | null;
  batches: number;
}

/** Scores every group of `model` by the chosen importance. */
export async function groupImportance(model: FloatWeights, opts: ImportanceOptions): Promise<ImportanceResult> {
  if (opts.kind === "l2") return { scores: l2Scores(model), loss: null, batches: 0 };
  if (opts.kind === "random") return { scores: randomScores(model.config, opts.seed), loss: null, batches: 0 };
  if (!opts.source) throw new SlimtuneError("E_ARG", `--importance ${opts.kind} needs calibration or task data (--data)`);
  const gradientOptions = { samples: opts.samples, seed: opts.seed, threads: opts.threads, onProgress: opts.onProgress };
  if (opts.kind === "taylor") {
    const grads = await accumulateGradients(model, opts.source, gradientOptions);
    return { scores: taylorScores(model, grads, opts.taylor ?? "element"), loss: grads.meanLoss, batches: grads.batches };
  }
  const acc = taskGradientAccumulator(model);
  const grads = await accumulateGradients(model, opts.source, { ...gradientOptions, onBatch: acc.onBatch });
  return { scores: acc.finish(), loss: grads.meanLoss, batches: grads.batches };
}
