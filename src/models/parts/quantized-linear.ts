// A quantized linear layer as graph nodes, chosen by the layer's kind:
// - RTN, trainable per-channel scales (PEQA): y = ((W̄ − z) x) ⊙ s — integer-weight matmul, then scale;
// - RTN per group, or trainable per-group scales: the weight is dequantized in the graph, then one Gemm;
// - RTN frozen inference: ONNX Runtime's MatMulNBits on the packed codes (2, 4, 8 bits; 3 is widened);
// - RTN with GPTQ act-order (g_idx): the input columns are gathered into group order once, and the
//   layer runs as the same layer with its columns permuted (contiguous groups), by any path above;
// - NF4: codebook gather × absmax in the graph, then one Gemm;
// - ReALLM: y = x·Q̂ᵀ + (x·L₂ᵀ)·L₁ᵀ, L₁/L₂ constants or graph inputs (trained); Q̂ either dequantized
//   once on the host into a constant ("dequantized", the default) or rebuilt in the graph from its
//   codes by a codebook Gather times the block scales ("gather").
// A new kind adds one builder to the table below.

import { type Value, add, cast, gather, gemm, mul, reshape, transpose } from "../../engine/index.js";
import { nf4Codebook } from "../../quant/kinds/nf4.js";
import { blockScale, dequantizeVq } from "../../quant/kinds/reallm.js";
import type { GridLinear, Nf4Linear, QuantizedLinear, ReallmLinear, RtnLinear } from "../../quant/types.js";
import { canUseMatMulNBits, matMulNBits } from "./matmul-nbits.js";

export interface QuantLinearGraphOptions {
  /** Scales as a graph value (an input when they train); default: a constant from `q.scales`. */
  scales?: Value;
  /** Frozen inference through MatMulNBits when the layer allows it. */
  fused?: boolean;
  /** ReALLM: L₁ [N, r] and L₂ [r, K] as graph values (inputs when they train); default constants. */
  lowRank?: { l1: Value; l2: Value };
  /** ReALLM: how Q̂ enters the graph (default "dequantized"). */
  vq?: "dequantized" | "gather";
}

type Builder<L extends QuantizedLinear> = (x: Value, q: L, name: string, opts: QuantLinearGraphOptions) => Value;

const rtnLinear: Builder<RtnLinear> = (x, q, name, opts) => {
  if (q.groupIndex) {
    const { layer, perm } = groupOrdered(q);
    return rtnLinear(permuteColumns(x, perm, `${name}.act_order_perm`), layer, name, opts);
  }
  const g = x.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  if (opts.fused && !opts.scales && canUseMatMulNBits(q)) return matMulNBits(x, q, name);
  const centered = cast(g.constant(...centeredCodes(q), `${name}.centered_codes`), "float32");
  if (G === 1) {
    // Per-channel: (W̄ − z) is exact in int8 for b ≤ 7 (int16 otherwise); scales multiply the output.
    const s = opts.scales ?? g.constant(q.scales, [N], "float32", `${name}.scales`);
    return mul(gemm(x, centered, { transB: true }), reshape(s, [N]));
  }
  return gemm(x, groupScaled(centered, q, name, opts), { transB: true });
};

const nf4Linear: Builder<Nf4Linear> = (x, q, name, opts) => {
  const g = x.graph;
  const { outFeatures: N, inFeatures: K } = q;
  const book = g.constant(nf4Codebook, [16], "float32", `${name}.codebook`);
  const levels = gather(book, g.constant(Int32Array.from(q.codes), [N, K], "int32", `${name}.codes`));
  return gemm(x, groupScaled(levels, q, name, opts), { transB: true });
};

const reallmLinear: Builder<ReallmLinear> = (x, q, name, opts) => {
  const g = x.graph;
  const { outFeatures: N, inFeatures: K, spec } = q;
  let y: Value;
  if (opts.vq === "gather") {
    const d = spec.vqDim;
    const bs = spec.blockSize;
    const book = g.constant(q.codebook, [1 << spec.codeBits, d], "float32", `${name}.vq_codebook`);
    const entries = gather(book, g.constant(Int32Array.from(q.vqCodes), [N, K / d], "int32", `${name}.vq_codes`)); // [N, K/d, d]
    const scales = new Float32Array(N * (K / bs));
    for (let r = 0; r < N; r++) for (let b = 0; b < K / bs; b++) scales[r * (K / bs) + b] = blockScale(q, r, b);
    const s = g.constant(scales, [N, K / bs, 1], "float32", `${name}.vq_scales`);
    const qPermuted = reshape(mul(reshape(entries, [N, K / bs, bs]), s), [N, K]); // columns in permuted order
    const xp = q.perm ? permuteColumns(x, q.perm, `${name}.vq_perm`) : x;
    y = gemm(xp, qPermuted, { transB: true });
  } else {
    y = gemm(x, g.constant(dequantizeVq(q), [N, K], "float32", `${name}.vq_weight`), { transB: true });
  }
  const r = spec.rank;
  if (r === 0) return y;
  const l1 = opts.lowRank?.l1 ?? g.constant(q.l1, [N, r], "float32", `${name}.lowrank_l1`);
  const l2 = opts.lowRank?.l2 ?? g.constant(q.l2, [r, K], "float32", `${name}.lowrank_l2`);
  return add(y, gemm(gemm(x, l2, { transB: true }), l1, { transB: true }));
};

const builders: { [K in QuantizedLinear["kind"]]: Builder<Extract<QuantizedLinear, { kind: K }>> } = {
  rtn: rtnLinear,
  nf4: nf4Linear,
  reallm: reallmLinear,
};

export function quantizedLinear(x: Value, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions = {}): Value {
  const build = builders[q.kind] as Builder<QuantizedLinear>;
  const y = build(x, q, name, opts);
  return q.bias ? add(y, x.graph.constant(q.bias, [q.outFeatures], "float32", `${name}.bias`)) : y;
}

/** levels [N, K] × scales per group [N, G] → the dequantized weight [N, K]. */
function groupScaled(levels: Value, q: GridLinear, name: string, opts: QuantLinearGraphOptions): Value {
  const g = levels.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  const s = reshape(opts.scales ?? g.constant(q.scales, [N, G], "float32", `${name}.scales`), [N, G, 1]);
  return reshape(mul(reshape(levels, [N, G, groupSize]), s), [N, K]);
}

/** An act-order layer with its columns sorted by group (stable): y = x·Ŵᵀ = x[:, perm]·Ŵ[:, perm]ᵀ. */
function groupOrdered(q: RtnLinear): { layer: RtnLinear; perm: Int32Array } {
  const gIdx = q.groupIndex!;
  const { outFeatures: N, inFeatures: K } = q;
  const perm = Int32Array.from({ length: K }, (_, i) => i).sort((a, b) => gIdx[a]! - gIdx[b]! || a - b);
  const codes = new Uint8Array(N * K);
  for (let n = 0; n < N; n++) for (let j = 0; j < K; j++) codes[n * K + j] = q.codes[n * K + perm[j]!]!;
  const { groupIndex: _dropped, ...rest } = q;
  return { layer: { ...rest, codes }, perm };
}

/** x [M, K] → x[:, perm] (a row gather on xᵀ, so gradients flow back through Gather's VJP). */
function permuteColumns(x: Value, perm: Int32Array, name: string): Value {
  const idx = x.graph.constant(BigInt64Array.from(perm, (v) => BigInt(v)), [perm.length], "int64", name);
  return transpose(gather(transpose(x, [1, 0]), idx), [1, 0]);
}

function centeredCodes(q: RtnLinear): [Int8Array | Int16Array, number[], "int8" | "int16"] {
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  const wide = q.spec.bits >= 8;
  const out = wide ? new Int16Array(N * K) : new Int8Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) out[n * K + k] = q.codes[n * K + k]! - q.zeros[n * G + Math.floor(k / groupSize)]!;
  }
  return [out, [N, K], wide ? "int16" : "int8"];
}
