// A quantized linear layer as graph nodes, chosen by the layer's kind:
// - RTN, trainable per-channel scales (PEQA): y = ((W̄ − z) x) ⊙ s — integer-weight matmul, then scale;
// - RTN per group, or trainable per-group scales: the weight is dequantized in the graph, then one Gemm;
// - RTN frozen inference: ONNX Runtime's MatMulNBits on the packed codes (2, 4, 8 bits; 3 is widened);
// - NF4: codebook gather × absmax in the graph, then one Gemm.
// A new kind adds one builder to the table below.

import { type Value, add, cast, gather, gemm, mul, reshape } from "../../engine/index.js";
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

type Builder<L extends QuantizedLinear> = (x: Value, q: L, name: string, opts: QuantLinearGraphOptions) => Value;

const rtnLinear: Builder<RtnLinear> = (x, q, name, opts) => {
  const g = x.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  if (opts.fused && !opts.scales && canUseMatMulNBits(q)) return matMulNBits(x, q, name, opts.accuracyLevel);
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

const builders: { [K in QuantizedLinear["kind"]]: Builder<Extract<QuantizedLinear, { kind: K }>> } = {
  rtn: rtnLinear,
  nf4: nf4Linear,
};

export function quantizedLinear(x: Value, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions = {}): Value {
  const build = builders[q.kind] as Builder<QuantizedLinear>;
  const y = build(x, q, name, opts);
  return q.bias ? add(y, x.graph.constant(q.bias, [q.outFeatures], "float32", `${name}.bias`)) : y;
}

/** levels [N, K] × scales per group [N, G] → the dequantized weight [N, K]. */
function groupScaled(levels: Value, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions): Value {
  const g = levels.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  const s = reshape(opts.scales ?? g.constant(q.scales, [N, G], "float32", `${name}.scales`), [N, G, 1]);
  return reshape(mul(reshape(levels, [N, G, groupSize]), s), [N, K]);
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
