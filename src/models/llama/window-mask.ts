// The masks of sliding-window attention, for every family whose layers have a window
// (arch/llama/window.ts says which layers and how wide): query index q sees key index k when
// 0 ≤ q − k < window. One mask per distinct window is built per graph and shared by the layers
// that have it; a layer without a window (or whose window covers the whole sequence) gets the mask
// it would have had anyway. graph.ts (training, scoring, packed rows, the block graph), kv-graph.ts
// (generation, ONNX export) and gemma3-attention.ts all take their masks from here.

import { type DType, type Graph, type Value, add, cacheMask, expand } from "../../engine/index.js";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { layerWindow } from "../../arch/llama/window.js";

const MASKED = -1e30;

/** The additive [T, T] mask of causal attention within `window` tokens: key j visible from query t when t − window < j ≤ t. */
export function windowCausalMask(T: number, window: number): Float32Array {
  const data = new Float32Array(T * T).fill(MASKED);
  for (let t = 0; t < T; t++) for (let j = Math.max(0, t - window + 1); j <= t; j++) data[t * T + j] = 0;
  return data;
}

export interface SequenceMaskInputs {
  batch: number;
  seq: number;
  /** Packed rows' block-diagonal causal mask [B, 1, T, T] (each example to itself). */
  exampleMask?: Value;
}

/**
 * The extra mask of layer i in a full-sequence graph, for causalAttention's `mask` argument
 * ([B, 1, T, T], causal within the window and, in packed rows, within the example), or the example
 * mask alone / undefined where the layer's window hides nothing. Constants take `dtype` (float64 in
 * the gradient checks). Packed rows need no more: the window counts indices, and inside one
 * example index distance equals position distance.
 */
export function sequenceWindowMasks(config: LlamaConfig, g: Graph, inputs: SequenceMaskInputs): (layer: number, dtype: DType) => Value | undefined {
  const { batch: B, seq: T, exampleMask } = inputs;
  const made = new Map<number, Value>();
  return (i, dtype) => {
    const window = layerWindow(config, i);
    // A window at least as long as the sequence hides nothing: the plain causal mask is used.
    if (window === undefined || window >= T) return exampleMask;
    let mask = made.get(window);
    if (!mask) {
      const data = windowCausalMask(T, window);
      const local = g.constant(dtype === "float64" ? Float64Array.from(data) : data, [1, 1, T, T], dtype);
      mask = exampleMask ? add(exampleMask, local) : expand(local, [B, 1, T, T]);
      made.set(window, mask);
    }
    return mask;
  };
}

export interface CachedMaskInputs {
  /** attention_mask [B, P + T] (int64). */
  keep: Value;
  seq: number;
  /** Past length P (a dim; 0 before the first token). */
  past: number;
  /** cacheMask(keep, T, P): causal and padding, [B, 1, 1, T, P + T]. */
  mask: Value;
}

/** The mask of layer i over the key/value cache: `mask`, or cacheMask with the window on the layers that have one. */
export function cachedWindowMasks(config: LlamaConfig, inputs: CachedMaskInputs): (layer: number) => Value {
  const made = new Map<number, Value>();
  return (i) => {
    const window = layerWindow(config, i);
    if (window === undefined) return inputs.mask;
    let mask = made.get(window);
    if (!mask) {
      mask = cacheMask(inputs.keep, inputs.seq, inputs.past, window);
      made.set(window, mask);
    }
    return mask;
  };
}
