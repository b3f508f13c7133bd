// Gradients of a task loss with respect to every linear weight of a float model, accumulated over
// `samples` calibration batches without updating anything: what Taylor and task-gradient importance
// and the Fisher-weighted bit allocation are computed from. The weights become graph inputs of the
// ordinary training graph (language modelling or classification), so the engine's autodiff gives
// ∂L/∂W exactly as it does in training.

import { linearLayers } from "../arch/llama/shapes.js";
import type { FloatWeights } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { padBatch } from "../data/cls-batches.js";
import type { TokenizedExample } from "../data/examples.js";
import { type HostTensor, Graph, GraphCache } from "../engine/index.js";
import { HEAD, LABELS, LAST, buildClsTrainGraph } from "../models/llama/cls-graphs.js";
import { IDS, TARGETS, buildLmTrainGraph, gradName } from "../models/llama/lm-graphs.js";
import { DenseParams } from "../models/llama/params.js";

/** Calibration or task data as the loss sees it. */
export type LossSource =
  | {
      kind: "lm";
      tokens: Int32Array;
      /** Windows per batch (B) and tokens per window (T). */
      batch: number;
      seq: number;
    }
  | {
      kind: "classify";
      examples: readonly TokenizedExample[];
      batch: number;
      maxLen: number;
      padId: number;
      numLabels: number;
      /** The classifier head [numLabels, C] the loss is measured through (see classify-probe.ts). */
      head: Float32Array;
    };

export interface GradientOptions {
  /** Calibration batches; each contributes one gradient. */
  samples: number;
  /** Seeds which windows or examples form the batches. */
  seed: number;
  threads?: number;
  /** Also accumulate the mean squared per-batch gradient (an empirical Fisher diagonal). */
  fisher?: boolean;
  /** Called with each batch's gradients (by weight name), e.g. for per-batch importance. */
  onBatch?: (grads: ReadonlyMap<string, Float32Array>) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface GradientStats {
  /** Mean over batches of ∂L/∂W for each linear layer's "<path>.weight". */
  mean: Map<string, Float32Array>;
  /** Mean over batches of (∂L/∂W)², when `fisher` was asked for. */
  meanSquare: Map<string, Float32Array> | null;
  batches: number;
  meanLoss: number;
}

/** One calibration batch: its feeds and the shape key of the graph that runs it. */
interface CalibrationBatch {
  feeds: Record<string, HostTensor>;
  shape: string;
}

/**
 * The `samples` batches, drawn without repetition: LM windows of T + 1 tokens at non-overlapping
 * positions, or distinct labelled examples. Throws E_DATA naming the shortfall when the data is too
 * short, before any work.
 */
export function calibrationBatches(source: LossSource, samples: number, seed: number): CalibrationBatch[] {
  if (!(Number.isInteger(samples) && samples >= 1)) throw new SlimtuneError("E_ARG", `--samples ${samples} must be a positive integer`);
  const rng = new Rng(seed);
  const B = source.batch;
  if (source.kind === "lm") {
    const T = source.seq;
    const slots = Math.floor((source.tokens.length - 1) / T);
    const needed = samples * B;
    if (slots < needed) {
      throw new SlimtuneError(
        "E_DATA",
        `calibration data has ${source.tokens.length} tokens, room for ${slots} windows of ${T}; --samples ${samples} × --batch ${B} needs ${needed} (${needed * T + 1} tokens) — pass a longer file, or lower --samples, --batch or --seq`,
      );
    }
    const picked = shuffled(slots, rng).slice(0, needed);
    return Array.from({ length: samples }, (_, s) => {
      const ids = new BigInt64Array(B * T);
      const targets = new BigInt64Array(B * T);
      for (let b = 0; b < B; b++) {
        const start = picked[s * B + b]! * T;
        for (let t = 0; t < T; t++) {
          ids[b * T + t] = BigInt(source.tokens[start + t]!);
          targets[b * T + t] = BigInt(source.tokens[start + t + 1]!);
        }
      }
      return { feeds: { [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } }, shape: `lm:${B}x${T}` };
    });
  }
  const needed = samples * B;
  if (source.examples.length < needed) {
    throw new SlimtuneError(
      "E_DATA",
      `calibration data has ${source.examples.length} labelled examples; --samples ${samples} × --batch ${B} needs ${needed} — pass more examples, or lower --samples or --batch`,
    );
  }
  const order = shuffled(source.examples.length, rng).slice(0, needed);
  return Array.from({ length: samples }, (_, s) => {
    const p = padBatch(order.slice(s * B, (s + 1) * B).map((i) => source.examples[i]!), source.maxLen, source.padId);
    return {
      feeds: {
        [IDS]: { data: p.ids, shape: [B, p.T] },
        [LAST]: { data: p.last, shape: [B] },
        [LABELS]: { data: p.labels, shape: [B] },
        [HEAD]: { data: source.head, shape: [source.numLabels, source.head.length / source.numLabels] },
      },
      shape: `cls:${B}x${p.T}`,
    };
  });
}

/** Accumulates ∂L/∂W of every linear weight of `model` over the calibration batches. */
export async function accumulateGradients(model: FloatWeights, source: LossSource, opts: GradientOptions): Promise<GradientStats> {
  const batches = calibrationBatches(source, opts.samples, opts.seed);
  const names = linearLayers(model.config).map((l) => `${l.path}.weight`);
  const asInputs = new Set(names);
  const weightFeeds: Record<string, HostTensor> = {};
  for (const n of names) weightFeeds[n] = model.weights.get(n)!;
  const cache = new GraphCache({ threads: opts.threads });
  const mean = new Map(names.map((n) => [n, new Float32Array(model.weights.get(n)!.data.length)]));
  const meanSquare = opts.fisher ? new Map(names.map((n) => [n, new Float32Array(model.weights.get(n)!.data.length)])) : null;
  const S = batches.length;
  let loss = 0;
  try {
    for (const [i, batch] of batches.entries()) {
      const [B, T] = (batch.feeds[IDS]!.shape as [number, number]);
      const compiled = await cache.get(batch.shape, () => {
        const params = new DenseParams(new Graph(), model.weights, asInputs);
        return source.kind === "lm"
          ? buildLmTrainGraph(model.config, params, B, T, names)
          : buildClsTrainGraph(model.config, params, source.numLabels, B, T, names);
      });
      const out = await compiled.run({ ...weightFeeds, ...batch.feeds });
      loss += (out.loss!.data[0] as number) / S;
      const grads = new Map(names.map((n) => [n, out[gradName(n)]!.data as Float32Array]));
      for (const [n, g] of grads) {
        const m = mean.get(n)!;
        for (let j = 0; j < g.length; j++) m[j]! += g[j]! / S;
        const sq = meanSquare?.get(n);
        if (sq) for (let j = 0; j < g.length; j++) sq[j]! += (g[j]! * g[j]!) / S;
      }
      opts.onBatch?.(grads);
      opts.onProgress?.(i + 1, S);
    }
  } finally {
    await cache.clear();
  }
  return { mean, meanSquare, batches: S, meanLoss: loss };
}

/**
 * Mean loss of `model` over the calibration batches `samples` and `seed` pick (the same ones
 * `accumulateGradients` used for the same source), with no backward pass: after pruning, what the
 * cut cost on the data it was measured on.
 */
export async function calibrationLoss(model: FloatWeights, source: LossSource, opts: { samples: number; seed: number; threads?: number }): Promise<number> {
  const batches = calibrationBatches(source, opts.samples, opts.seed);
  const cache = new GraphCache({ threads: opts.threads });
  let loss = 0;
  try {
    for (const batch of batches) {
      const [B, T] = batch.feeds[IDS]!.shape as [number, number];
      const compiled = await cache.get(batch.shape, () => {
        const params = new DenseParams(new Graph(), model.weights, new Set());
        return source.kind === "lm" ? buildLmTrainGraph(model.config, params, B, T, []) : buildClsTrainGraph(model.config, params, source.numLabels, B, T, []);
      });
      const out = await compiled.run(batch.feeds);
      loss += (out.loss!.data[0] as number) / batches.length;
    }
  } finally {
    await cache.clear();
  }
  return loss;
}

/** 0…n−1 in a seeded random order (Fisher–Yates). */
function shuffled(n: number, rng: Rng): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
