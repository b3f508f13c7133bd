// ONNX Runtime's fused CPU contrib kernels for generation graphs (inference only, no gradient).
// Run one token at a time, a decode step pays ORT's fixed cost per node (~40 µs under load) as
// much as its arithmetic: the portable attention of one layer is ~25 nodes (reshapes, transposes,
// RoPE, the cache Concat, two MatMuls, the mask, Softmax), GroupQueryAttention is one; a residual
// Add and the next RMSNorm are one SkipSimplifiedLayerNormalization. Signatures as ORT 1.30's
// contrib op schema: GroupQueryAttention (query, key, value, past_key, past_value, seqlens_k,
// total_sequence_length, cos_cache, sin_cache) → (output, present_key, present_value), caches
// [B, KV, S, D]; SkipSimplifiedLayerNormalization (input, skip, gamma) → (output, mean,
// inv_std_var, input_skip_bias_sum).

import { type OpDef, type Value, cast, dimValue, reduceSum, reshape, sub } from "../../engine/index.js";

const SkipSimplifiedLayerNormalization: OpDef = { type: "SkipSimplifiedLayerNormalization", domain: "com.microsoft" };
const GroupQueryAttention: OpDef = { type: "GroupQueryAttention", domain: "com.microsoft" };

/** RMSNorm(x + skip) · gamma and, when `wantSum`, x + skip (the new residual stream), in one kernel. */
export function skipRmsNorm(x: Value, skip: Value, gamma: Value, eps: number, wantSum = true): { norm: Value; sum: Value | null } {
  const spec = { shape: x.shape, dtype: x.dtype };
  const [norm, , , sum] = x.graph.addMulti(SkipSimplifiedLayerNormalization, [x, skip, gamma], [spec, null, null, wantSum ? spec : null], { epsilon: { float: eps } });
  return { norm: norm!, sum: sum ?? null };
}

/**
 * What GroupQueryAttention reads besides q/k/v, built once per graph from the attention mask
 * `keep` [B, P + T] (int64, all ones: the kernel assumes right padding, so generation feeds one
 * unpadded sequence): seqlens_k = tokens − 1 per row, total_sequence_length = P + T, and RoPE's
 * half-width cos/sin tables [maxPositions, D/2] (positions come from seqlens_k inside the kernel).
 */
export interface GqaContext {
  seqlensK: Value;
  totalLength: Value;
  cos: Value;
  sin: Value;
}

export function gqaContext(keep: Value, total: number, rope: { cos: Value; sin: Value }): GqaContext {
  const g = keep.graph;
  const seqlensK = cast(sub(reduceSum(keep, [1]), g.scalar(1, "int64")), "int32"); // [B]
  const totalLength = cast(dimValue(g, total), "int32"); // [1]
  return { seqlensK, totalLength, ...rope };
}

export interface GqaShape {
  batch: number;
  seq: number;
  /**
   * The past caches' length P (a dim). Grown caches hold exactly the past, and the present ones are
   * [B, KV, P + T, D]. A cache of fixed capacity P holds the past in its first rows (how many: the
   * context's seqlens_k), and the present one is again [B, KV, P, D], zero past the new rows.
   */
  past: number;
  /** Whether the past caches are fixed-capacity buffers (see `past`). */
  capacity?: boolean;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * Causal grouped-query attention of T new tokens over the cache, RoPE applied inside (rotate-half):
 * q [B·T, H·D], k and v [B·T, KV·D] before RoPE (or already [B, T, ·]); past keys (after RoPE) and
 * values [B, KV, P, D]. Returns the output in q's layout and the caches with the new tokens
 * appended, [B, KV, P + T, D].
 */
export function groupQueryAttention(q: Value, k: Value, v: Value, past: { key: Value; value: Value }, s: GqaShape, ctx: GqaContext): { out: Value; key: Value; value: Value } {
  const g = q.graph;
  const { batch: B, seq: T, heads: H, kvHeads: KV, headDim: D } = s;
  const rows = (x: Value, width: number) => (x.rank === 3 ? x : reshape(x, [B, T, width]));
  const cache = { shape: [B, KV, s.capacity ? s.past : g.dims.add(s.past, T), D], dtype: q.dtype };
  const [out, key, value] = g.addMulti(
    GroupQueryAttention,
    [rows(q, H * D), rows(k, KV * D), rows(v, KV * D), past.key, past.value, ctx.seqlensK, ctx.totalLength, ctx.cos, ctx.sin],
    [{ shape: [B, T, H * D], dtype: q.dtype }, cache, cache],
    { num_heads: H, kv_num_heads: KV, do_rotary: 1, rotary_interleaved: 0 },
  );
  return { out: q.rank === 3 ? out! : reshape(out!, [g.dims.mul(B, T), H * D]), key: key!, value: value! };
}

const SliceOp: OpDef = { type: "Slice" };

/**
 * The rows of a present cache [B, KV, rows, D] that this run wrote: [start, end) along its length,
 * int64 [1] bounds computed in the graph (for a fixed-capacity cache, the attention mask's length − T
 * and that length). A caller that keeps the cache in its own buffers fetches only these, so a decode
 * step hands back KV·D values per layer instead of the whole cache (onnxruntime-node copies every
 * output it returns, pre-allocated or not).
 */
export function newCacheRows(present: Value, start: Value, end: Value, seq: number): Value {
  const g = present.graph;
  const [B, KV, , D] = present.shape as [number, number, number, number];
  return g.add(SliceOp, [present, start, end, g.int64s([2])], [B, KV, seq, D], present.dtype);
}
