// What every layer above knows about a model's parameters: a float tensor on the host, a set of
// them by transformers name, and the seam through which a graph gets its weights.

import type { Graph, Value } from "../engine/index.js";
import type { LlamaConfig } from "./llama/config.js";

/** A float32 tensor on the host with its PyTorch shape. */
export interface HostParam {
  data: Float32Array;
  shape: number[];
}

/** A float model in memory: its config, every parameter by name, and the folder it came from. */
export interface FloatWeights {
  readonly config: LlamaConfig;
  readonly weights: Map<string, HostParam>;
  /** Folder it was loaded from (tokenizer files are copied from here on save); null if built in memory. */
  readonly sourceDir: string | null;
}

/**
 * Where a model graph gets its weights: methods (PEQA, LoRA, gates…) replace plain linear layers
 * through this seam without touching the model's code.
 */
export interface ParamSource {
  readonly graph: Graph;
  /** A plain tensor: embeddings, norm weights. */
  tensor(name: string): Value;
  /** y = x Wᵀ (+ b) for the module at `path` (e.g. "model.layers.0.mlp.up_proj"); x: [N, in]. */
  linear(path: string, x: Value): Value;
  /** Rows of the token embedding for `ids` ([...ids, C]) when it is not a plain tensor (a quantized table). */
  embed?(ids: Value): Value;
  /** Logits x·Wᵀ of the output head (x [M, C] → [M, V]) when it is not a plain tensor (a quantized table). */
  head?(x: Value): Value;
  /** A regularizer the method adds to the training loss (e.g. FineGates' L0 term), once the model is built. */
  penalty?(): Value | null;
}
