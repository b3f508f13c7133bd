// The LLaMA family's configuration as slimtune holds it: global widths, per-layer widths of a pruned
// model, biases, RoPE and token ids. config.json is parsed into this by formats/hf-config.ts.
// Qwen3 is this family plus one step (RMSNorm over each head's query and key before RoPE), so it is
// held here too, with `qkNorm` set, rather than in an arch folder of its own.

// Phi-3 is the LLaMA block with q/k/v and gate/up each stored as one fused linear layer
// (`fusedProjections`), kept fused so that quantized layers and adapters have transformers' names.

// Gemma 3 (text) is the LLaMA block with Gemma's changes, held in `gemma3` (arch/llama/gemma3.ts):
// the graph branches on it once per layer and once around the stack (models/llama/gemma3-layer.ts).

// GPT-2 ("gpt2") has a block of its own (LayerNorm with bias, learned positions, no RoPE, GELU):
// it shares this config (widths, eps, tied head) but its names, shapes and graph live in arch/gpt2
// and models/gpt2; `isGpt2` is the one test the shared code branches on.

export type LlamaModelType = "llama" | "mistral" | "qwen2" | "qwen3" | "phi3" | "gemma3_text" | "gpt2";

/** True for a GPT-2 model (its own block: see arch/gpt2, models/gpt2). */
export const isGpt2 = (config: Pick<LlamaConfig, "modelType">): boolean => config.modelType === "gpt2";

/** What Gemma 3's layers add to the LLaMA block (arch/llama/gemma3.ts has the helpers that read it). */
export interface Gemma3Options {
  /** Per layer: true when it attends within the sliding window (local), false for full attention. */
  slidingLayers: boolean[];
  /** RoPE base of the sliding layers (rope_local_base_freq). */
  localRopeTheta: number;
  /** rope_scaling {rope_type: "linear", factor} of the full-attention layers: positions divided by it (1 = none). */
  globalRopeFactor: number;
  /** Attention scores are q·k / √queryPreAttnScalar. */
  queryPreAttnScalar: number;
}

/** Llama 3's RoPE scaling parameters (config.json "rope_scaling" with rope_type "llama3"). */
export interface Llama3RopeScaling {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}


/** Widths of one decoder layer: query heads, key/value heads, MLP channels (0 removes the sub-block). */
export interface LayerShape {
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
}

/** Layer i's widths: its pruned shape if the model has one, else the global widths. */
export function layerShape(config: LlamaConfig, i: number): LayerShape {
  return config.layerShapes?.[i] ?? { numHeads: config.numHeads, numKvHeads: config.numKvHeads, intermediateSize: config.intermediateSize };
}

export interface LlamaConfig {
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** The norms' epsilon: RMSNorm's, or LayerNorm's for gpt2 (layer_norm_epsilon). */
  rmsNormEps: number;
  ropeTheta: number;
  /** RoPE frequency scaling (Llama 3.x); absent means plain RoPE. */
  ropeScaling?: Llama3RopeScaling;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** q/k/v projections carry a bias (llama with attention_bias, and always for qwen2). */
  attentionBias: boolean;
  /** o_proj carries a bias (only llama with attention_bias; qwen2 has none). */
  outputBias: boolean;
  /** gate/up/down projections carry a bias (llama's mlp_bias). */
  mlpBias: boolean;
  /**
   * RMSNorm over each head's query and key (weights q_norm, k_norm of size headDim, shared by the
   * heads) after the projections and before RoPE: qwen3.
   */
  qkNorm: boolean;
  /**
   * q/k/v as one linear layer qkv_proj (rows: queries, keys, values) and gate/up as one gate_up_proj
   * (rows: gate, then up): phi3. Structured pruning needs them split and refuses such a model.
   */
  fusedProjections?: boolean;
  /** Gemma 3's block, norms, GeGLU and per-layer attention (model_type gemma3_text); absent for every other family. */
  gemma3?: Gemma3Options;
  bosTokenId?: number;
  eosTokenId?: number;
  /** All end-of-sequence ids when config.json lists several (LLaMA 3 does). */
  eosTokenIds?: number[];
  hiddenAct: string;
  /**
   * Attention window in tokens (mistral, phi3, qwen2/qwen3 with use_sliding_window, gemma3_text); absent
   * means full attention. Which layers it applies to: arch/llama/window.ts's layerWindow.
   */
  slidingWindow?: number;
  /**
   * Per layer: true when it attends within slidingWindow (qwen2, qwen3: the layers at index ≥
   * max_window_layers, or named "sliding_attention" by layer_types); absent means every layer does.
   * Gemma 3 holds its own pattern (gemma3.slidingLayers).
   */
  windowedLayers?: boolean[];
  /**
   * Per-layer widths of a structurally pruned model (config.json "slimtune_layer_shapes"); absent
   * means every layer has the global widths. transformers cannot load such a model.
   */
  layerShapes?: LayerShape[];
  raw: Record<string, unknown>;
}

