// Which layers attend within a sliding window, and how wide it is, for every family whose config
// declares one. The rule is transformers' (masking_utils' sliding_window_overlay, llama.cpp's
// LLAMA_SWA_TYPE_STANDARD): query index q sees key index k when 0 ≤ q − k < window.
//  - mistral: every layer, `sliding_window` tokens (MistralConfig's default 4096; null = none);
//  - phi3: every layer, `sliding_window` (Phi-3-mini-4k: 2047; null = none);
//  - qwen2 and qwen3: only with use_sliding_window true, and then only the layers at index ≥
//    max_window_layers (Qwen2Config's and Qwen3Config's layer_types default), or the layers
//    `layer_types` names "sliding_attention";
//  - gemma3_text: the layers its layer_types / pattern mark sliding (arch/llama/gemma3.ts).
// llama.cpp applies the window of gemma3 only: its llama (mistral), qwen2, qwen3 and phi3 graphs attend
// over the whole context (phi3 reads the key and then disables it), so slimtune follows transformers
// and the GGUF export says where the two differ (ggufWindowWarning).

import type { LlamaConfig } from "./config.js";
import { isSlidingLayer } from "./gemma3.js";

/** The window of layer i in tokens, or undefined when the layer attends over the whole context. */
export function layerWindow(config: LlamaConfig, i: number): number | undefined {
  const window = config.slidingWindow;
  if (window === undefined) return undefined;
  if (config.gemma3) return isSlidingLayer(config, i) ? window : undefined;
  if (config.windowedLayers) return config.windowedLayers[i] === true ? window : undefined;
  return window;
}

/** Whether any layer's window is shorter than `tokens`, i.e. hides a key from some query of a sequence that long. */
export function windowBinds(config: LlamaConfig, tokens: number): boolean {
  for (let i = 0; i < config.numLayers; i++) {
    const w = layerWindow(config, i);
    if (w !== undefined && w < tokens) return true;
  }
  return false;
}

/**
 * The line a GGUF export prints when llama.cpp will attend where transformers would not: a model
 * with a window shorter than its context, in an architecture whose window llama.cpp ignores
 * (every family but gemma3). null when the two agree at every length up to the model's context.
 */
export function ggufWindowWarning(config: LlamaConfig): string | null {
  if (config.gemma3 || !windowBinds(config, config.maxPositionEmbeddings)) return null;
  return (
    `${config.modelType} attends within a sliding window of ${config.slidingWindow} tokens, which llama.cpp does not apply to this architecture: ` +
    `its outputs equal slimtune's (and transformers') for sequences up to ${config.slidingWindow} tokens and differ beyond (context ${config.maxPositionEmbeddings}); ` +
    `the ONNX export keeps the window`
  );
}
