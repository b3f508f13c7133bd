// What scoring code needs from a model, whatever its storage or adapter: the weights of a new
// graph, the feeds of that graph's weight inputs, and a key that tells cached graphs apart.

import type { LlamaConfig } from "../arch/llama/config.js";
import type { ParamSource } from "../arch/params.js";
import type { Graph, HostTensor } from "../engine/index.js";

export interface ScoringModel {
  config: LlamaConfig;
  /** Weights for a new graph. */
  params(graph: Graph): ParamSource;
  /** Feeds for the graph's weight inputs (trainable tensors, an adapter's, a task's scales). */
  weightFeeds(): Record<string, HostTensor>;
  /** Distinguishes cached graphs of different weight layouts. */
  cacheKey: string;
}

/** A ScoringModel with a classification head of `numLabels` (fed as "score.weight" by weightFeeds). */
export interface ClassifierModel extends ScoringModel {
  numLabels: number;
}
