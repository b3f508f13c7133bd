// Sequence classification as a training task: random batches of labelled examples, a trained
// `score` head beside the method's tensors, accuracy on a dev set.

import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { Graph } from "../engine/index.js";
import { accuracy } from "../eval/classify.js";
import { saveClassifierHead } from "../formats/classifier-head.js";
import { buildClsTrainGraph, HEAD, LABELS, LAST } from "../models/llama/cls-graphs.js";
import { IDS } from "../models/llama/lm-graphs.js";
import { writeFileAtomic } from "../core/atomic.js";
import { Rng } from "../core/rng.js";
import type { TrainTask } from "./task.js";
import type { HostParam } from "../arch/params.js";
import type { LlamaConfig } from "../arch/llama/config.js";
import { padBatch } from "../data/cls-batches.js";
import type { TokenizedExample } from "../data/examples.js";
import { MAX_LABELS } from "../data/tsv.js";

export interface ClassifyTaskOptions {
  batch: number;
  maxLen: number;
  numLabels: number;
  padId: number;
  /** Seeds the head's initialisation (normal, std 0.02 as transformers does). */
  seed: number;
  /** Start from an existing head instead (e.g. resuming an adapter). */
  head?: Float32Array;
  /** Dev examples scored per evaluation (all when larger than the set). */
  evalExamples?: number;
}

export function classifyTask(config: LlamaConfig, train: TokenizedExample[], dev: TokenizedExample[], opts: ClassifyTaskOptions): TrainTask {
  const { batch: B, maxLen, numLabels: L } = opts;
  // The head is L × hidden floats: bound L before allocating it.
  if (!(Number.isInteger(L) && L >= 1 && L <= MAX_LABELS)) {
    throw new SlimtuneError("E_DATA", `the task has ${L} labels; a classification head takes 1 to ${MAX_LABELS} (labels number the classes from 0) — check the label column or --num-labels`);
  }
  for (const [set, name] of [[train, "training"], [dev, "dev"]] as const) {
    const bad = set.find((e) => e.label >= L);
    if (bad) throw new SlimtuneError("E_DATA", `${name} data has label ${bad.label}, but the head has ${L} labels (0…${L - 1}); pass --num-labels ${bad.label + 1}`);
  }
  const headData = opts.head ? Float32Array.from(opts.head) : new Float32Array(L * config.hiddenSize);
  if (opts.head && opts.head.length !== L * config.hiddenSize) {
    throw new SlimtuneError("E_SHAPE", `classification head has ${opts.head.length} values; ${L} labels × hidden ${config.hiddenSize} need ${L * config.hiddenSize}`);
  }
  if (!opts.head) new Rng(opts.seed + 7919).fillNormal(headData, 0.02);
  const head: HostParam = { data: headData, shape: [L, config.hiddenSize] };
  const devSet = dev.slice(0, opts.evalExamples ?? dev.length);
  return {
    kind: "classify",
    fixed: { task: "classify", batch: B, max_len: maxLen, num_labels: L },
    extraTrainable: new Map([[HEAD, head]]),
    stepGraph: (method, trainable, shape, o) => {
      if (o.replicas > 1) throw new SlimtuneError("E_ARG", "--parallel splits language-modelling batches; classification batches are padded per batch — train with --parallel 1");
      const T = Number(shape.split("x")[1]);
      return {
        key: `${method.name}:cls-train:${shape}${o.checkpoint ? ":ckpt" : ""}`,
        build: () => buildClsTrainGraph(method.config, method.params(new Graph(), "train"), L, B, T, trainable, { checkpoint: o.checkpoint }),
      };
    },
    sampler: (rng) => ({
      next: () => {
        const picked = Array.from({ length: B }, () => train[rng.int(train.length)]!);
        const p = padBatch(picked, maxLen, opts.padId);
        return {
          feeds: {
            [IDS]: { data: p.ids, shape: [B, p.T] },
            [LAST]: { data: p.last, shape: [B] },
            [LABELS]: { data: p.labels, shape: [B] },
          },
          tokens: p.tokens,
          shape: `${B}x${p.T}`,
        };
      },
    }),
    evaluate: async (method, cache, weights) => {
      if (devSet.length === 0) return null;
      const r = await accuracy(
        { config: method.config, numLabels: L, params: (g) => method.params(g), weightFeeds: () => weights, cacheKey: method.name },
        cache,
        devSet,
        { batch: B, maxLen, padId: opts.padId },
      );
      return { loss: r.loss, metrics: { accuracy: r.accuracy }, examples: r.examples, seconds: r.seconds };
    },
    saveExtra: (outDir) => {
      saveClassifierHead(outDir, head, { maxLen, padId: opts.padId });
    },
  };
}
