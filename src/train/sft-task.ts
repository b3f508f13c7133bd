// Instruction tuning as a training task: passes over the examples in a fresh seeded order, packed
// into rows of --seq positions (or one example per row), with the loss on answer tokens only; held-
// out evaluation is the mean loss over the held-out examples' answer tokens.

import { SlimtuneError } from "../core/errors.js";
import type { Rng } from "../core/rng.js";
import { type PackedBatch, packRows, packedBatch } from "../data/packing.js";
import type { SftExample } from "../data/sft-examples.js";
import { type GraphCache, Graph, type HostTensor } from "../engine/index.js";
import { IDS, TARGETS } from "../models/llama/lm-graphs.js";
import { buildSftScoreGraph, buildSftTrainGraph, EXAMPLE_MASK, LOSS_WEIGHTS, POSITIONS } from "../models/llama/sft-graphs.js";
import type { TuningMethod } from "../methods/method.js";
import type { TrainTask } from "./task.js";

export interface SftTaskOptions {
  batch: number;
  seq: number;
  /** Several examples per row (block-diagonal attention); false: one example per row. */
  pack: boolean;
  padId: number;
  /** Held-out examples scored per evaluation (all when larger than the set). */
  evalExamples?: number;
}

/** The graph inputs of a packed batch; `weighted` divides the loss mask by the batch's answer tokens. */
export function packedFeeds(p: PackedBatch, weighted: boolean): Record<string, HostTensor> {
  const B = p.batch;
  const T = p.seq;
  const scale = weighted && p.lossTokens > 0 ? 1 / p.lossTokens : 1;
  const feeds: Record<string, HostTensor> = {
    [IDS]: { data: p.ids, shape: [B, T] },
    [TARGETS]: { data: p.targets, shape: [B * T] },
    [POSITIONS]: { data: p.positions, shape: [B, T] },
    [EXAMPLE_MASK]: { data: p.mask, shape: [B, 1, T, T] },
  };
  if (weighted) feeds[LOSS_WEIGHTS] = { data: Float32Array.from(p.lossMask, (m) => m * scale), shape: [B * T] };
  return feeds;
}

/** Optimizer steps one pass over `examples` takes (rows of the packing in file order; a shuffled pass packs within a row or so of it). */
export function stepsPerEpoch(examples: readonly SftExample[], opts: { batch: number; seq: number; pack: boolean; accumulate?: number }): number {
  const rows = packRows(examples, opts.seq, opts.pack).length;
  return Math.max(1, Math.ceil(rows / opts.batch / (opts.accumulate ?? 1)));
}

export function sftTask(train: readonly SftExample[], heldOut: readonly SftExample[], opts: SftTaskOptions): TrainTask {
  const { batch: B, seq: T } = opts;
  if (train.length === 0) throw new SlimtuneError("E_DATA", "no training examples; the data file needs records that fit --seq");
  const evalSet = heldOut.slice(0, opts.evalExamples ?? heldOut.length);
  return {
    kind: "sft",
    fixed: { task: "sft", batch: B, seq: T, pack: opts.pack ? 1 : 0 },
    extraTrainable: new Map(),
    stepGraph: (method, trainable, _shape, o) => {
      if (o.replicas > 1) throw new SlimtuneError("E_ARG", "--parallel splits language-modelling batches; instruction batches are packed per row — train with --parallel 1");
      return {
        key: `${method.name}:sft-train:${B}x${T}${o.checkpoint ? ":ckpt" : ""}`,
        build: () => buildSftTrainGraph(method.config, method.params(new Graph(), "train"), B, T, trainable, { checkpoint: o.checkpoint }),
      };
    },
    sampler: (rng) => {
      let rows: SftExample[][] = [];
      const nextPass = () => {
        const order = shuffled(train, rng);
        rows = rows.concat(packRows(order, T, opts.pack));
      };
      return {
        next: () => {
          while (rows.length < B) nextPass();
          const p = packedBatch(rows.splice(0, B), B, T, opts.padId);
          return { feeds: packedFeeds(p, true), tokens: p.tokens, shape: `${B}x${T}` };
        },
      };
    },
    evaluate: async (method: TuningMethod, cache: GraphCache, weights: Record<string, HostTensor>) => {
      if (evalSet.length === 0) return null;
      const started = performance.now();
      const r = await answerLoss(
        { key: method.name, build: () => buildSftScoreGraph(method.config, method.params(new Graph()), B, T) },
        cache,
        weights,
        evalSet,
        opts,
      );
      return { loss: r.loss, metrics: { answer_perplexity: Math.exp(r.loss) }, examples: r.examples, seconds: (performance.now() - started) / 1000 };
    },
    saveExtra: () => {},
  };
}

/** Mean negative log-likelihood of the answer tokens of `examples`, packed in order. */
export async function answerLoss(
  graph: { key: string; build: () => ReturnType<typeof buildSftScoreGraph> },
  cache: GraphCache,
  weights: Record<string, HostTensor>,
  examples: readonly SftExample[],
  opts: { batch: number; seq: number; pack: boolean; padId: number },
): Promise<{ loss: number; tokens: number; examples: number }> {
  const { batch: B, seq: T } = opts;
  const compiled = await cache.get(`${graph.key}:sft-score:${B}x${T}`, graph.build);
  const rows = packRows(examples, T, opts.pack);
  let sum = 0;
  let tokens = 0;
  for (let i = 0; i < rows.length; i += B) {
    const p = packedBatch(rows.slice(i, i + B), B, T, opts.padId);
    const nll = (await compiled.run({ ...weights, ...packedFeeds(p, false) })).nll!.data as Float32Array;
    for (let k = 0; k < nll.length; k++) if (p.lossMask[k]! > 0) sum += nll[k]!;
    tokens += p.lossTokens;
  }
  return { loss: tokens > 0 ? sum / tokens : Number.NaN, tokens, examples: examples.length };
}

function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
