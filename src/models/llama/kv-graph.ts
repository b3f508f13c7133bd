// The LLaMA decoder with a key/value cache, for generation and for exported models: one graph
// serves every prompt length and every past length through symbolic dims. Inputs and outputs carry
// the names transformers.js and optimum use (formats.md §4.2), so the exported ONNX file is this
// graph: input_ids, attention_mask [B, P + T], position_ids, past_key_values.{i}.key/value →
// logits, present.{i}.key/value. Generation's fused graph may instead keep the cache in the
// caller's fixed-capacity buffers and return only each run's new rows (KvGraphOptions.fixedCache).

import { type Graph, type GraphOutputs, type Value, cacheMask, cachedAttention, dimValue, expand, gemm, reshape, rmsNormFused, ropeFused, ropeHalfTables, sub, take } from "../../engine/index.js";
import { type LayerShape, type LlamaConfig, isGpt2, layerShape } from "../../arch/llama/config.js";
import { GPT2_WTE } from "../../arch/gpt2/names.js";
import type { ParamSource } from "../../arch/params.js";
import { ropeInvFreq } from "../../arch/llama/rope.js";
import { llamaBlocks } from "./graph.js";
import { gemma3CachedAttention } from "./gemma3-attention.js";
import { gpt2Blocks } from "../gpt2/graph.js";
import { layerNormFused } from "../gpt2/layers.js";
import { cachedWindowMasks } from "./window-mask.js";
import { fusedDecoderFits, fusedLlamaBlocks } from "../parts/fused-decoder.js";
import { gqaContext, groupQueryAttention, newCacheRows } from "../parts/fused-ops.js";

export const INPUT_IDS = "input_ids";
export const ATTENTION_MASK = "attention_mask";
export const POSITION_IDS = "position_ids";
export const LOGITS = "logits";
export const pastName = (layer: number, half: "key" | "value") => `past_key_values.${layer}.${half}`;
export const presentName = (layer: number, half: "key" | "value") => `present.${layer}.${half}`;
/** A fixed-capacity cache graph's output: the rows this run added to layer i's cache (KvGraphOptions.fixedCache). */
export const newRowsName = (layer: number, half: "key" | "value") => `new_rows.${layer}.${half}`;

export interface KvGraphOptions {
  /** A fixed batch (generation: 1), or "dynamic" for a symbolic batch_size (exports). */
  batch: number | "dynamic";
  /** New tokens per run: a fixed count (decode: 1), or "dynamic" (prefill, exports). */
  seq: number | "dynamic";
  /** Takes past_key_values inputs (decode, exports); without them the graph starts a sequence (prefill). */
  past: boolean;
  /** "last": logits [B, V] of each sequence's last position (generation); "all": [B, T, V] (exports). */
  logits: "last" | "all";
  /**
   * What position_ids counts from (default 0). An ONNX export of Gemma 3 takes 1: transformers.js
   * feeds gemma3_text position ids starting at 1, as onnx-community's Gemma 3 exports expect.
   */
  positionBase?: number;
  /**
   * Generation: ONNX Runtime's fused kernels (GroupQueryAttention with its RoPE,
   * SkipSimplifiedLayerNormalization) where fusedDecoderFits says the family allows them, for a
   * batch of 1 with a past input; ~13 nodes per layer instead of ~37. The kernel takes positions
   * from the attention mask (all ones: one unpadded sequence), so position_ids is fed but unread.
   * Off for exports: transformers.js feeds left-padded batches.
   */
  fused?: boolean;
  /**
   * With `fused` (and only when the graph is fused): the caller keeps each layer's cache in a buffer
   * of fixed capacity [1, KV, capacity, D] that it feeds as the past on every run, the first
   * (attention mask length − T) rows valid; the graph returns only the T rows the run adds
   * (newRowsName, [1, KV, T, D]), which the caller writes after them. onnxruntime-node has no IO
   * binding and copies every output it returns, so returning the whole present cache cost each
   * decode step a copy of every layer's cache. The attention mask's length is then its own dim.
   */
  fixedCache?: boolean;
}

export interface KvGraph {
  graph: Graph;
  outputs: GraphOutputs;
  /** Key/value heads of each layer's cache (per-layer widths of a pruned model; 0 = no attention). */
  kvHeads: number[];
  /** Whether the graph runs ORT's fused kernels (opts.fused and a family they fit). */
  fused: boolean;
  /** Whether the graph takes fixed-capacity caches and returns only new rows (opts.fixedCache on a fused graph). */
  fixedCache: boolean;
}

export function buildKvGraph(config: LlamaConfig, p: ParamSource, opts: KvGraphOptions): KvGraph {
  const g = p.graph;
  const B = opts.batch === "dynamic" ? g.sym("batch_size") : opts.batch;
  const T = opts.seq === "dynamic" ? g.sym("sequence_length") : opts.seq;
  const P = opts.past ? g.sym("past_sequence_length") : 0;
  const D = config.headDim;
  const fused = opts.fused === true && opts.batch === 1 && opts.past && fusedDecoderFits(config);
  const fixedCache = fused && opts.fixedCache === true;
  // A fixed-capacity cache's length P says nothing of how many tokens came before: the mask does.
  const total = fixedCache ? g.sym("total_sequence_length") : g.dims.add(P, T);
  const ids = g.input(INPUT_IDS, [B, T], "int64");
  const keep = g.input(ATTENTION_MASK, [B, total], "int64");
  const positions = g.input(POSITION_IDS, [B, T], "int64");
  const kvHeads = Array.from({ length: config.numLayers }, (_, i) => {
    const w = layerShape(config, i);
    return w.numHeads > 0 ? w.numKvHeads : 0;
  });
  const past = kvHeads.map((KV, i) =>
    opts.past ? { key: g.input(pastName(i, "key"), [B, KV, P, D]), value: g.input(pastName(i, "value"), [B, KV, P, D]) } : null,
  );

  // One token at a time, every node's fixed cost counts: RMSNorm and RoPE run as ONNX Runtime's
  // fused kernels (SimplifiedLayerNormalization, com.microsoft.RotaryEmbedding, which transformers.js'
  // onnxruntime runs too), with HF's float32 cos/sin tables up to the model's context. GPT-2 has
  // no RoPE: its blocks (models/gpt2) add learned position embeddings at position_ids instead, and
  // its LayerNorms run as ONNX's LayerNormalization.
  const outputs: GraphOutputs = {};
  const onPresent = (i: number, key: Value, value: Value) => {
    outputs[presentName(i, "key")] = key;
    outputs[presentName(i, "value")] = value;
  };
  let hidden: Value;
  if (fused) {
    const ctx = gqaContext(keep, total, ropeHalfConstants(config, g));
    // The rows this run adds to a fixed-capacity cache: [mask length − T, mask length).
    const rows = fixedCache ? { start: sub(dimValue(g, total), dimValue(g, T)), end: dimValue(g, total) } : null;
    hidden = fusedLlamaBlocks(config, p, ids, (i, q, k, v, widths) => {
      const shape = { batch: B, seq: T, past: P, capacity: fixedCache, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: D };
      const { out, key, value } = groupQueryAttention(q, k, v, past[i]!, shape, ctx);
      if (!rows) onPresent(i, key, value);
      else {
        outputs[newRowsName(i, "key")] = newCacheRows(key, rows.start, rows.end, T);
        outputs[newRowsName(i, "value")] = newCacheRows(value, rows.start, rows.end, T);
      }
      return out;
    });
  } else {
    const mask = cacheMask(keep, T, P);
    // Gemma 3: a RoPE table per layer kind and the sliding window on its local layers.
    const gemma = config.gemma3
      ? gemma3CachedAttention(config, g, { batch: B, seq: T, past: P, positions, positionBase: opts.positionBase ?? 0, mask, keep, pastOf: (i) => past[i]!, onPresent })
      : null;
    const rotate = gemma ? null : isGpt2(config) ? (x: Value) => x : ropeRotation(config, positions);
    const maskOf = cachedWindowMasks(config, { keep, seq: T, past: P, mask }); // the sliding window of the layers that have one
    const attend =
      gemma ??
      ((i: number, q: Value, k: Value, v: Value, widths: LayerShape) => {
        const shape = { batch: B, seq: T, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: D };
        const { out, key, value } = cachedAttention(q, k, v, shape, rotate!, maskOf(i), past[i]!);
        onPresent(i, key, value);
        return out;
      });
    hidden = isGpt2(config) ? gpt2Blocks(config, p, ids, positions, attend, { norm: layerNormFused }) : llamaBlocks(config, p, ids, attend, { norm: rmsNormFused });
  }
  // A layer a pruning removed all heads from keeps an empty cache that still grows with the sequence,
  // so every layer's cache has the same length (transformers.js reads it from any of them).
  kvHeads.forEach((KV, i) => {
    if (KV > 0) return;
    const name = fixedCache ? newRowsName : presentName;
    outputs[name(i, "key")] = emptyCache(g, B, fixedCache ? T : total, D);
    outputs[name(i, "value")] = emptyCache(g, B, fixedCache ? T : total, D);
  });

  // A quantized table (ParamSource.head) or the float head tensor.
  const headName = config.tieWordEmbeddings ? (isGpt2(config) ? GPT2_WTE : "model.embed_tokens.weight") : "lm_head.weight";
  const project = (x: Value) => (p.head ? p.head(x) : gemm(x, p.tensor(headName), { transB: true }));
  const V = config.vocabSize;
  const C = config.hiddenSize;
  const logits =
    opts.logits === "last"
      ? project(take(reshape(hidden, [B, T, C]), 1, -1)) // (B, V)
      : reshape(project(hidden), [B, T, V]); // (B, T, V)
  return { graph: g, outputs: { [LOGITS]: logits, ...outputs }, kvHeads, fused, fixedCache };
}

/** RoPE at `positions` through ONNX Runtime's fused kernel, with HF's float32 tables up to the model's context. */
function ropeRotation(config: LlamaConfig, positions: Value): (x: Value) => Value {
  const rot = ropeHalfConstants(config, positions.graph);
  return (x: Value) => ropeFused(x, positions, rot);
}

/** HF's float32 RoPE tables [context, D/2] as constants (RotaryEmbedding and GroupQueryAttention read the same layout). */
function ropeHalfConstants(config: LlamaConfig, g: Graph): { cos: Value; sin: Value } {
  const D = config.headDim;
  const tables = ropeHalfTables(config.maxPositionEmbeddings, D, config.ropeTheta, ropeInvFreq(config));
  const half = [config.maxPositionEmbeddings, D / 2];
  return { cos: g.constant(tables.cos, half, "float32", "rope.cos"), sin: g.constant(tables.sin, half, "float32", "rope.sin") };
}

/** [B, 0, P + T, D]: a cache with no heads, the length of the others. */
function emptyCache(g: Graph, B: number, total: number, D: number): Value {
  return expand(g.constant(new Float32Array(0), [1, 0, 1, D]), [B, 0, total, D]);
}
