// The training-memory estimate on its own, free of node:* so a web page can use it too (the page
// checks a model against WASM's 4 GiB before loading it). memory.ts checks it against os.freemem().
// The estimate is deliberately simple and on the low side (what the run needs at least), so it
// never refuses a run that fits: weights, the optimizer's copies of the trainable tensors, the
// activations the backward keeps, and the logits.

import type { LlamaConfig } from "../arch/llama/config.js";

export interface MemoryEstimate {
  weightsBytes: number;
  optimizerBytes: number;
  activationBytes: number;
  logitsBytes: number;
  totalBytes: number;
}

export interface MemoryInputs {
  config: LlamaConfig;
  totalParameters: number;
  trainableParameters: number;
  batch: number;
  /** Tokens per sequence (language modelling) or per example (classification). */
  seq: number;
  checkpointActivations: boolean;
  /** Classification scores num_labels per sequence instead of vocab_size per token. */
  outputsPerToken?: number;
}

export function estimateTrainingMemory(m: MemoryInputs): MemoryEstimate {
  const c = m.config;
  const bt = m.batch * m.seq;
  // Float32 everywhere: the weights fed to ORT (an upper bound for quantized bases, whose float copy
  // exists while they load), and per trainable value its gradient and AdamW's two moments.
  const weightsBytes = 4 * m.totalParameters;
  const optimizerBytes = 12 * m.trainableParameters;
  // What the backward keeps per layer: the residual stream and norms (~6 × hidden), q/k/v/o
  // (~4 × heads × head_dim), the MLP's gate/up/act (~3 × intermediate), and the attention
  // probabilities (heads × T per token).
  const perToken = 6 * c.hiddenSize + 4 * c.numHeads * c.headDim + 3 * c.intermediateSize + c.numHeads * m.seq;
  const perLayer = 4 * bt * perToken;
  const keptLayers = m.checkpointActivations ? 1 : c.numLayers;
  const activationBytes = perLayer * keptLayers + (m.checkpointActivations ? 4 * bt * c.hiddenSize * c.numLayers : 0);
  // Logits, their softmax and its gradient.
  const logitsBytes = 3 * 4 * (m.outputsPerToken === undefined ? bt * c.vocabSize : m.batch * m.outputsPerToken);
  return { weightsBytes, optimizerBytes, activationBytes, logitsBytes, totalBytes: weightsBytes + optimizerBytes + activationBytes + logitsBytes };
}
