// The attention of each Gemma 3 layer: its own RoPE (local base on sliding layers, global base and
// linear factor on full-attention layers) and, on sliding layers, a window: query at index q sees
// key j only when q − window < j ≤ q (transformers' sliding_window_overlay and llama.cpp's
// LLAMA_SWA_TYPE_STANDARD agree; the masks are window-mask.ts's, shared with every family). Built for the full-sequence graphs (training, scoring, packed
// rows, the block graph) and for the key/value-cache graph (generation, ONNX export), as
// LayerAttention callbacks, so graph.ts and kv-graph.ts only choose which one to pass.

import { type DType, type Graph, type Value, cachedAttention, causalAttention, gather, reshape, ropeFused, ropeHalfTables, ropeTables, sub } from "../../engine/index.js";
import type { LayerShape, LlamaConfig } from "../../arch/llama/config.js";
import { gemma3InvFreq, gemma3Of, isSlidingLayer } from "../../arch/llama/gemma3.js";
import { cachedWindowMasks, sequenceWindowMasks } from "./window-mask.js";

// graph.ts's LayerAttention and NormFn, spelled out here (the same types) because graph.ts imports this file.
/** Attention of layer i: q [B·T, H·D], k and v [B·T, KV·D] (projections, before RoPE) → [B·T, H·D]. */
type LayerAttention = (layer: number, q: Value, k: Value, v: Value, widths: LayerShape) => Value;

/** Per-layer-kind values built once per graph: index 0 for full-attention layers, 1 for sliding ones. */
function perKind<T>(config: LlamaConfig, build: (sliding: boolean, layer: number) => T): (layer: number) => T {
  const made = new Map<boolean, T>();
  return (i) => {
    const sliding = isSlidingLayer(config, i);
    let v = made.get(sliding);
    if (v === undefined) {
      v = build(sliding, i);
      made.set(sliding, v);
    }
    return v;
  };
}

export interface SequenceAttentionInputs {
  batch: number;
  seq: number;
  keyMask?: Value;
  /** Packed rows: positions [B, T] and the block-diagonal causal mask [B, 1, T, T]. */
  packed?: { positions: Value; exampleMask: Value };
}

/** Causal attention of the full-sequence graphs, each layer with its RoPE and, when sliding, its window. */
export function gemma3SequenceAttention(config: LlamaConfig, g: Graph, inputs: SequenceAttentionInputs): LayerAttention {
  const { batch: B, seq: T, packed, keyMask } = inputs;
  const D = config.headDim;
  gemma3Of(config);
  // Constants take the queries' dtype (float64 in the gradient checks), known at the first call.
  let dtype: DType = "float32";
  const constant = (data: Float32Array, shape: number[]) => g.constant(dtype === "float64" ? Float64Array.from(data) : data, shape, dtype);
  const rotOf = perKind(config, (_sliding, i) => {
    const tables = ropeTables(T, D, 0, gemma3InvFreq(config, i));
    const table = { cos: constant(tables.cos, [T, D]), sin: constant(tables.sin, [T, D]) };
    if (!packed) return table;
    const at = (t: Value) => reshape(gather(t, packed.positions), [B, 1, T, D]);
    return { cos: at(table.cos), sin: at(table.sin) };
  });
  const maskOf = sequenceWindowMasks(config, g, { batch: B, seq: T, ...(packed ? { exampleMask: packed.exampleMask } : {}) });
  return (i, q, k, v, widths) => {
    dtype = q.dtype;
    return causalAttention(q, k, v, { batch: B, seq: T, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: D }, rotOf(i), keyMask, maskOf(i, dtype));
  };
}

export interface CachedAttentionInputs {
  batch: number;
  seq: number;
  /** Past length P (a dim; 0 before the first token). */
  past: number;
  positions: Value;
  /** position_ids minus this is the RoPE position (1 in an ONNX export for transformers.js, which feeds Gemma 3 positions from 1). */
  positionBase: number;
  /** cacheMask(keep, T, P): causal and padding, [B, 1, 1, T, P + T]. */
  mask: Value;
  keep: Value;
  pastOf: (layer: number) => { key: Value; value: Value } | null;
  onPresent: (layer: number, key: Value, value: Value) => void;
}

/** Attention over the key/value cache, each layer with its RoPE table and, when sliding, the window on top of the cache mask. */
export function gemma3CachedAttention(config: LlamaConfig, g: Graph, inputs: CachedAttentionInputs): LayerAttention {
  const { batch: B, seq: T, past: P, mask } = inputs;
  const D = config.headDim;
  const maxPos = config.maxPositionEmbeddings;
  const positions = inputs.positionBase === 0 ? inputs.positions : sub(inputs.positions, g.scalar(inputs.positionBase, "int64"));
  const rotateOf = perKind(config, (sliding, i) => {
    const tables = ropeHalfTables(maxPos, D, 0, gemma3InvFreq(config, i));
    const name = sliding ? "rope_local" : "rope_global";
    const rot = { cos: g.constant(tables.cos, [maxPos, D / 2], "float32", `${name}.cos`), sin: g.constant(tables.sin, [maxPos, D / 2], "float32", `${name}.sin`) };
    return (x: Value) => ropeFused(x, positions, rot);
  });
  const maskOf = cachedWindowMasks(config, { keep: inputs.keep, seq: T, past: P, mask });
  return (i, q, k, v, widths) => {
    const shape = { batch: B, seq: T, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: D };
    const { out, key, value } = cachedAttention(q, k, v, shape, rotateOf(i), maskOf(i), inputs.pastOf(i));
    inputs.onPresent(i, key, value);
    return out;
  };
}

/**
 * What position_ids counts from in an exported KV graph: 1 for Gemma 3, whose position ids
 * transformers.js creates from 1 (decoder_forward's start_index for gemma3_text, matching
 * onnx-community's exports), 0 for every other family.
 */
export function exportedPositionBase(config: LlamaConfig): number {
  return config.gemma3 ? 1 : 0;
}
