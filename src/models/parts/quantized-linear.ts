// A quantized linear layer as graph nodes, chosen by the layer's kind:
// - RTN per channel: y = ((W̄ − z) x) ⊙ s — integer-weight matmul, then scale (PEQA's trick);
// - RTN per group, and NF4: the weight is dequantized in the graph, then one Gemm;
// - RTN frozen inference: ONNX Runtime's MatMulNBits on the packed codes (2, 4, 8 bits; 3 is widened);
// - RTN with GPTQ act-order (g_idx): the input columns are gathered into group order once, and the
//   layer runs as the same layer with its columns permuted (contiguous groups), by any path above;
// - ReALLM: y = x·Q̂ᵀ + (x·L₂ᵀ)·L₁ᵀ, L₁/L₂ constants or graph inputs (trained); Q̂ either dequantized
//   once on the host into a constant ("dequantized", the default) or rebuilt in the graph from its
//   codes by a codebook Gather times the block scales ("gather"), or the same from constants at their
//   stored widths ("compact", exports: the file is the folder's size).
// A new kind adds one builder to the table below.
//
// Training keeps the frozen base compressed: codes stay int8 initializers (constant folding is
// switched off for the graph, or ORT would fold Cast(codes) into float32 copies of every weight),
// and each layer's backward dequantizes its codes again instead of holding the forward's float
// weight until the backward reaches it (common-subexpression elimination is off too, so the two
// dequantizations stay two). Peak memory then holds the codes plus one layer's float weight at a
// time; the price is one extra dequantization per layer per step.

import { type Graph, type Value, add, cast, gather, gemm, mul, reduceSum, reshape, transpose } from "../../engine/index.js";
import { float32ToFloat16, roundToF16 } from "../../core/f16.js";
import { nf4Codebook } from "../../quant/kinds/nf4.js";
import { blockScale, dequantizeVq } from "../../quant/kinds/reallm.js";
import type { GridLinear, Nf4Linear, QuantizedLinear, ReallmLinear, RtnLinear } from "../../quant/types.js";
import { canUseMatMulNBits, matMulNBits } from "./matmul-nbits.js";
import { canPackCodes, packedCodes } from "./packed-codes.js";

export interface QuantLinearGraphOptions {
  /** Scales as a graph value (an input when they train); default: a constant from `q.scales`. */
  scales?: Value;
  /** Frozen inference through MatMulNBits when the layer allows it. */
  fused?: boolean;
  /** MatMulNBits' accuracy_level: 0 exact (default), 4 int8 activations (generation). */
  accuracyLevel?: 0 | 4;
  /** MatMulNBits on 3-bit codes stored at 3 bits and widened in the graph (exports: the file's size). */
  packThreeBit?: boolean;
  /** ReALLM: L₁ [N, r] and L₂ [r, K] as graph values (inputs when they train); default constants. */
  lowRank?: { l1: Value; l2: Value };
  /**
   * ReALLM: how Q̂ enters the graph (default "dequantized"). "compact" is "gather" with every constant
   * at its stored width — codes packed at their bits (parts/packed-codes.ts), scale codes uint8,
   * codebook and float16 factors in half precision,
   * widened in the graph — so an exported file is the size of the folder.
   */
  vq?: "dequantized" | "gather" | "compact";
}

/**
 * Builds a layer's constants once and returns the function that applies the layer to an input, so
 * applying it again (a checkpointed block rebuilt in the backward) reuses the same constants.
 */
type Builder<L extends QuantizedLinear> = (g: Graph, q: L, name: string, opts: QuantLinearGraphOptions) => (x: Value) => Value;

/** Keeps compressed constants compressed in ORT (see the header). */
function keepCompressed(g: Graph): void {
  g.disabledOptimizers.add("ConstantFolding");
  g.disabledOptimizers.add("CommonSubexpressionElimination");
}

const rtnLinear: Builder<RtnLinear> = (g, q, name, opts) => {
  if (q.groupIndex) {
    const { layer, perm } = groupOrdered(q);
    const inner = rtnLinear(g, layer, name, opts);
    const permute = columnPermutation(g, perm, `${name}.act_order_perm`);
    return (x) => inner(permute(x));
  }
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  if (opts.fused && !opts.scales && canUseMatMulNBits(q)) return matMulNBits(g, q, name, opts.accuracyLevel, opts.packThreeBit);
  keepCompressed(g);
  const codes = g.constant(...centeredCodes(q), `${name}.centered_codes`);
  const levels = () => cast(codes, "float32");
  if (K / groupSize !== 1) return groupScaledLinear(g, q, name, opts, levels);
  // Per channel: (W̄ − z) is exact in int8 for b ≤ 7 (int16 otherwise); scales multiply the output.
  const s = opts.scales ?? g.constant(q.scales, [N], "float32", `${name}.scales`);
  const sv = reshape(s, [N]);
  return (x) => {
    const z = gemm(x, levels(), { transB: true }); // (M, N)
    const y = mul(z, sv);
    g.defineVjp(y, [x, s], (dy) => {
      const dx = gemm(mul(dy, sv), levels()); // (M, K)
      const ds = s.kind === "input" ? reshape(reduceSum(mul(dy, z), [0]), s.shape) : null;
      return [dx, ds];
    });
    return y;
  };
};

const nf4Linear: Builder<Nf4Linear> = (g, q, name, opts) => {
  keepCompressed(g);
  const book = g.constant(nf4Codebook, [16], "float32", `${name}.codebook`);
  // One byte per code; Gather wants int32 indices, cast where each dequantization needs them.
  const codes = g.constant(q.codes, [q.outFeatures, q.inFeatures], "uint8", `${name}.codes`);
  return groupScaledLinear(g, q, name, opts, () => gather(book, cast(codes, "int32")));
};

const reallmLinear: Builder<ReallmLinear> = (g, q, name, opts) => {
  const { outFeatures: N, inFeatures: K, spec } = q;
  let vq: (x: Value) => Value;
  const compact = opts.vq === "compact";
  if (compact) {
    keepCompressed(g);
    const d = spec.vqDim;
    const bs = spec.blockSize;
    const book = narrowFloat(g, q.codebook, [1 << spec.codeBits, d], `${name}.vq_codebook`);
    const count = N * (K / d);
    const codes = canPackCodes(spec.codeBits, count)
      ? reshape(packedCodes(g, q.vqCodes, spec.codeBits, `${name}.vq_codes_packed`), [N, K / d])
      : cast(g.constant(q.vqCodes, [N, K / d], "uint8", `${name}.vq_codes`), "int32");
    // scale = code / (2^scaleBits − 1) · rowScale (quant/kinds/reallm.ts blockScale), per block.
    const scaleCodes = cast(g.constant(q.scaleCodes, [N, K / bs, 1], "uint8", `${name}.vq_scale_codes`), "float32");
    const rowFactor = g.constant(q.rowScales.map((s) => s / ((1 << spec.scaleBits) - 1)), [N, 1, 1], "float32", `${name}.vq_row_scales`);
    const s = mul(scaleCodes, rowFactor);
    const permute = q.perm ? columnPermutation(g, q.perm, `${name}.vq_perm`, "int32") : (x: Value) => x;
    vq = (x) => {
      const entries = gather(book, codes); // [N, K/d, d]
      const qPermuted = reshape(mul(reshape(entries, [N, K / bs, bs]), s), [N, K]);
      return gemm(permute(x), qPermuted, { transB: true });
    };
  } else if (opts.vq === "gather") {
    const d = spec.vqDim;
    const bs = spec.blockSize;
    const book = g.constant(q.codebook, [1 << spec.codeBits, d], "float32", `${name}.vq_codebook`);
    const codes = g.constant(Int32Array.from(q.vqCodes), [N, K / d], "int32", `${name}.vq_codes`);
    const scales = new Float32Array(N * (K / bs));
    for (let r = 0; r < N; r++) for (let b = 0; b < K / bs; b++) scales[r * (K / bs) + b] = blockScale(q, r, b);
    const s = g.constant(scales, [N, K / bs, 1], "float32", `${name}.vq_scales`);
    const permute = q.perm ? columnPermutation(g, q.perm, `${name}.vq_perm`) : (x: Value) => x;
    vq = (x) => {
      const entries = gather(book, codes); // [N, K/d, d]
      const qPermuted = reshape(mul(reshape(entries, [N, K / bs, bs]), s), [N, K]); // columns in permuted order
      return gemm(permute(x), qPermuted, { transB: true });
    };
  } else {
    const w = g.constant(dequantizeVq(q), [N, K], "float32", `${name}.vq_weight`);
    vq = (x) => gemm(x, w, { transB: true });
  }
  const r = spec.rank;
  if (r === 0) return vq;
  const factor = (data: Float32Array, shape: number[], n: string) => (compact && spec.lowRankDtype === "float16" ? narrowFloat(g, data, shape, n) : g.constant(data, shape, "float32", n));
  const l1 = opts.lowRank?.l1 ?? factor(q.l1, [N, r], `${name}.lowrank_l1`);
  const l2 = opts.lowRank?.l2 ?? factor(q.l2, [r, K], `${name}.lowrank_l2`);
  return (x) => add(vq(x), gemm(gemm(x, l2, { transB: true }), l1, { transB: true }));
};

const builders: { [K in QuantizedLinear["kind"]]: Builder<Extract<QuantizedLinear, { kind: K }>> } = {
  rtn: rtnLinear,
  nf4: nf4Linear,
  reallm: reallmLinear,
};

/** The layer as a function of its input, its constants created once in `g`. */
export function quantizedLinear(g: Graph, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions = {}): (x: Value) => Value {
  const apply = (builders[q.kind] as Builder<QuantizedLinear>)(g, q, name, opts);
  const bias = q.bias ? g.constant(q.bias, [q.outFeatures], "float32", `${name}.bias`) : null;
  return (x) => (bias ? add(apply(x), bias) : apply(x));
}

/**
 * y = x Ŵᵀ with Ŵ = levels ⊙ s per group of input columns; the backward rebuilds Ŵ from the codes:
 * dx = dy Ŵ, and for trainable scales ds = Σ_group (dyᵀ x) ⊙ levels.
 */
function groupScaledLinear(g: Graph, q: GridLinear, name: string, opts: QuantLinearGraphOptions, levels: () => Value): (x: Value) => Value {
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  const s = opts.scales ?? g.constant(q.scales, [N, G], "float32", `${name}.scales`);
  const s3 = reshape(s, [N, G, 1]);
  const weight = (l: Value) => reshape(mul(reshape(l, [N, G, groupSize]), s3), [N, K]);
  return (x) => {
    const y = gemm(x, weight(levels()), { transB: true });
    g.defineVjp(y, [x, s], (dy) => {
      const l = levels();
      const dx = gemm(dy, weight(l));
      if (s.kind !== "input") return [dx, null];
      const dW = gemm(dy, x, { transA: true }); // (N, K)
      const ds = reduceSum(mul(reshape(dW, [N, G, groupSize]), reshape(l, [N, G, groupSize])), [2]);
      return [dx, reshape(ds, s.shape)];
    });
    return y;
  };
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

/** float16 storage widened in the graph when every value is a float16 value (ReALLM's codebook, factors), else float32. */
function narrowFloat(g: Graph, data: Float32Array, shape: number[], name: string): Value {
  if (!data.every((v) => roundToF16(v) === v)) return g.constant(data, shape, "float32", name);
  return cast(g.constant(float32ToFloat16(data), shape, "float16", name), "float32");
}

/** x [M, K] → x[:, perm] (a row gather on xᵀ, so gradients flow back through Gather's VJP); the index built once. */
function columnPermutation(g: Graph, perm: Int32Array, name: string, index: "int64" | "int32" = "int64"): (x: Value) => Value {
  const idx = index === "int32" ? g.constant(Int32Array.from(perm), [perm.length], "int32", name) : g.constant(BigInt64Array.from(perm, (v) => BigInt(v)), [perm.length], "int64", name);
  return (x) => transpose(gather(transpose(x, [1, 0]), idx), [1, 0]);
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
