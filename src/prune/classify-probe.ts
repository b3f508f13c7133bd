// A classifier head for measuring a classification loss on a model that has none yet: a linear
// probe (softmax regression) fitted on the frozen model's last-token features of the calibration
// examples. Task-gradient and Taylor importance on a classification task differentiate the loss
// through this head; a random head would make the gradients a random projection of the task.

import type { FloatWeights } from "../arch/params.js";
import { Rng } from "../core/rng.js";
import { padBatch } from "../data/cls-batches.js";
import type { TokenizedExample } from "../data/examples.js";
import { Graph, GraphCache } from "../engine/index.js";
import { HEAD, LAST, buildClsScoreGraph } from "../models/llama/cls-graphs.js";
import { IDS } from "../models/llama/lm-graphs.js";
import { DenseParams } from "../models/llama/params.js";

export interface ProbeOptions {
  numLabels: number;
  maxLen: number;
  padId: number;
  batch: number;
  threads?: number;
  /** Full-batch gradient steps of the regression. */
  iterations?: number;
  /** L2 penalty on the head (keeps it finite on separable data). */
  l2?: number;
}

/** Last-token hidden states [n, C] of `examples` (the classification graph with the identity as head). */
export async function lastTokenFeatures(model: FloatWeights, examples: readonly TokenizedExample[], opts: ProbeOptions): Promise<Float32Array> {
  const C = model.config.hiddenSize;
  const identity = new Float32Array(C * C);
  for (let c = 0; c < C; c++) identity[c * C + c] = 1;
  const cache = new GraphCache({ threads: opts.threads });
  const features = new Float32Array(examples.length * C);
  try {
    for (let i = 0; i < examples.length; i += opts.batch) {
      const p = padBatch(examples.slice(i, i + opts.batch), opts.maxLen, opts.padId);
      const compiled = await cache.get(`features:${p.B}x${p.T}`, () => buildClsScoreGraph(model.config, new DenseParams(new Graph(), model.weights, new Set()), C, p.B, p.T));
      const out = await compiled.run({ [IDS]: { data: p.ids, shape: [p.B, p.T] }, [LAST]: { data: p.last, shape: [p.B] }, [HEAD]: { data: identity, shape: [C, C] } });
      features.set(out.logits!.data as Float32Array, i * C);
    }
  } finally {
    await cache.clear();
  }
  return features;
}

/**
 * Fits W [L, C] minimising mean cross-entropy + l2/2 ‖W‖² by full-batch gradient descent with the
 * step 1/Lipschitz bound (the softmax Hessian is at most ½ XᵀX/n), on features centred by nothing:
 * the model's final RMSNorm already puts them on a common scale.
 */
export function fitSoftmaxProbe(features: Float32Array, labels: Int32Array, C: number, numLabels: number, iterations = 300, l2 = 1e-3): Float32Array {
  const n = labels.length;
  const L = numLabels;
  let frob = 0;
  for (const v of features) frob += v * v;
  const step = 1 / (0.5 * (frob / n) + l2);
  const W = new Float64Array(L * C);
  const grad = new Float64Array(L * C);
  const p = new Float64Array(L);
  for (let it = 0; it < iterations; it++) {
    grad.fill(0);
    for (let e = 0; e < n; e++) {
      const x = features.subarray(e * C, (e + 1) * C);
      let max = -Infinity;
      for (let l = 0; l < L; l++) {
        let z = 0;
        for (let c = 0; c < C; c++) z += W[l * C + c]! * x[c]!;
        p[l] = z;
        max = Math.max(max, z);
      }
      let sum = 0;
      for (let l = 0; l < L; l++) sum += (p[l] = Math.exp(p[l]! - max));
      for (let l = 0; l < L; l++) {
        const d = p[l]! / sum - (l === labels[e] ? 1 : 0);
        for (let c = 0; c < C; c++) grad[l * C + c]! += (d * x[c]!) / n;
      }
    }
    for (let j = 0; j < W.length; j++) W[j]! -= step * (grad[j]! + l2 * W[j]!);
  }
  return Float32Array.from(W);
}

/** A probe head [numLabels, C] for `model`, fitted on a seeded sample of up to `count` of `examples`. */
export async function probeHead(model: FloatWeights, examples: readonly TokenizedExample[], opts: ProbeOptions & { count: number; seed: number }): Promise<Float32Array> {
  const rng = new Rng(opts.seed + 104729);
  const picked = Array.from({ length: Math.min(examples.length, opts.count) }, () => examples[rng.int(examples.length)]!);
  const features = await lastTokenFeatures(model, picked, opts);
  return fitSoftmaxProbe(features, Int32Array.from(picked, (e) => e.label), model.config.hiddenSize, opts.numLabels, opts.iterations, opts.l2);
}
