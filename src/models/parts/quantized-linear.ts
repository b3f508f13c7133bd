// A quantized linear layer as graph nodes, chosen by the layer's kind:
// - RTN per channel: y = ((W̄ − z) x) ⊙ s — integer-weight matmul, then scale (PEQA's trick);
// - RTN per group, and NF4: the weight is dequantized in the graph, then one Gemm;
// - RTN frozen inference: ONNX Runtime's MatMulNBits on the packed codes (2, 4, 8 bits; 3 is widened).
// A new kind adds one builder to the table below.
//
// Training keeps the frozen base compressed: codes stay int8 initializers (constant folding is
// switched off for the graph, or ORT would fold Cast(codes) into float32 copies of every weight),
// and each layer's backward dequantizes its codes again instead of holding the forward's float
// weight until the backward reaches it (common-subexpression elimination is off too, so the two
// dequantizations stay two). Peak memory then holds the codes plus one layer's float weight at a
// time; the price is one extra dequantization per layer per step.

import { type Graph, type Value, add, cast, gather, gemm, mul, reduceSum, reshape } from "../../engine/index.js";
import { nf4Codebook } from "../../quant/kinds/nf4.js";
import type { Nf4Linear, QuantizedLinear, RtnLinear } from "../../quant/types.js";
import { canUseMatMulNBits, matMulNBits } from "./matmul-nbits.js";

export interface QuantLinearGraphOptions {
  /** Scales as a graph value (an input when they train); default: a constant from `q.scales`. */
  scales?: Value;
  /** Frozen inference through MatMulNBits when the layer allows it. */
  fused?: boolean;
  /** MatMulNBits' accuracy_level: 0 exact (default), 4 int8 activations (generation). */
  accuracyLevel?: 0 | 4;
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
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  if (opts.fused && !opts.scales && canUseMatMulNBits(q)) return matMulNBits(g, q, name, opts.accuracyLevel);
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

const builders: { [K in QuantizedLinear["kind"]]: Builder<Extract<QuantizedLinear, { kind: K }>> } = {
  rtn: rtnLinear,
  nf4: nf4Linear,
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
function groupScaledLinear(g: Graph, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions, levels: () => Value): (x: Value) => Value {
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
