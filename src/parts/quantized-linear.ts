// A quantized linear layer as graph nodes, in three forms:
// - trainable per-channel scales (PEQA): y = ((W̄ − z) x) ⊙ s — integer-weight matmul, then scale;
// - trainable per-group scales or NF4: the weight is dequantized in the graph, then one Gemm;
// - frozen inference: ONNX Runtime's MatMulNBits on the packed codes (2, 4, 8 bits; 3 is widened).

import { type OpDef, type Value, add, cast, gather, gemm, mul, reshape } from "../engine/index.js";
import { nf4Codebook } from "../quant/nf4.js";
import type { QuantizedLinear } from "../quant/types.js";

export interface QuantLinearGraphOptions {
  /** Scales as a graph value (an input when they train); default: a constant from `q.scales`. */
  scales?: Value;
  /** Frozen inference through MatMulNBits when the layer allows it. */
  fused?: boolean;
}

export function quantizedLinear(x: Value, q: QuantizedLinear, name: string, opts: QuantLinearGraphOptions = {}): Value {
  const g = x.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  let y: Value;
  if (opts.fused && !opts.scales && q.zeros && canFuse(q)) {
    y = matMulNBits(x, q, name);
  } else if (q.zeros && G === 1) {
    // Per-channel: (W̄ − z) is exact in int8 for b ≤ 7 (int16 otherwise); scales multiply the output.
    const centered = g.constant(...centeredCodes(q), `${name}.centered_codes`);
    const s = opts.scales ?? g.constant(q.scales, [N], "float32", `${name}.scales`);
    y = mul(gemm(x, cast(centered, "float32"), { transB: true }), reshape(s, [N]));
  } else {
    const s = reshape(opts.scales ?? g.constant(q.scales, [N, G], "float32", `${name}.scales`), [N, G, 1]);
    let levels: Value;
    if (q.zeros) {
      levels = cast(g.constant(...centeredCodes(q), `${name}.centered_codes`), "float32");
    } else {
      const book = g.constant(nf4Codebook, [16], "float32", `${name}.codebook`);
      levels = gather(book, g.constant(Int32Array.from(q.codes), [N, K], "int32", `${name}.codes`));
    }
    const weight = reshape(mul(reshape(levels, [N, G, groupSize]), s), [N, K]);
    y = gemm(x, weight, { transB: true });
  }
  return q.bias ? add(y, g.constant(q.bias, [N], "float32", `${name}.bias`)) : y;
}

function centeredCodes(q: QuantizedLinear): [Int8Array | Int16Array, number[], "int8" | "int16"] {
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const G = K / groupSize;
  const wide = q.spec.bits >= 8;
  const out = wide ? new Int16Array(N * K) : new Int8Array(N * K);
  const zeros = q.zeros!;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) out[n * K + k] = q.codes[n * K + k]! - zeros[n * G + Math.floor(k / groupSize)]!;
  }
  return [out, [N, K], wide ? "int16" : "int8"];
}

// ---- MatMulNBits (com.microsoft): Y = A · dequant(B)ᵀ, dequant = (code − zero) · scale per block.

const MatMulNBits: OpDef = { type: "MatMulNBits", domain: "com.microsoft" };

/** Blocks must be a power of two in [16, 128]; per-channel layers reuse one scale across blocks. */
function blockSizeFor(q: QuantizedLinear): number {
  if (q.groupSize !== q.inFeatures) return q.groupSize;
  for (const b of [128, 64, 32, 16]) if (q.inFeatures % b === 0) return b;
  return 0;
}

function canFuse(q: QuantizedLinear): boolean {
  const b = blockSizeFor(q);
  return b >= 16 && b <= 128 && (b & (b - 1)) === 0 && q.groupSize % b === 0;
}

function matMulNBits(x: Value, q: QuantizedLinear, name: string): Value {
  const g = x.graph;
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const bits = q.spec.bits === 3 ? 4 : q.spec.bits; // ORT refuses 3-bit: widen the codes, same values
  const block = blockSizeFor(q);
  const blocks = K / block;
  const perGroup = groupSize / block;
  const G = K / groupSize;
  const blob = (block * bits) / 8;
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const zpRow = Math.ceil((blocks * bits) / 8);
  const zeroPoints = new Uint8Array(N * zpRow);
  for (let n = 0; n < N; n++) {
    for (let kb = 0; kb < blocks; kb++) {
      const grp = Math.floor(kb / perGroup);
      scales[n * blocks + kb] = q.scales[n * G + grp]!;
      packBits(zeroPoints, n * zpRow, kb, q.zeros![n * G + grp]!, bits);
      for (let j = 0; j < block; j++) {
        packBits(packed, (n * blocks + kb) * blob, j, q.codes[n * K + kb * block + j]!, bits);
      }
    }
  }
  const attrs = { K, N, bits, block_size: block, accuracy_level: 0 };
  return g.add(
    MatMulNBits,
    [
      x,
      g.constant(packed, [N, blocks, blob], "uint8", `${name}.nbits_weight`),
      g.constant(scales, [N * blocks], "float32", `${name}.nbits_scales`),
      g.constant(zeroPoints, [N * zpRow], "uint8", `${name}.nbits_zeros`),
    ],
    [x.shape[0]!, N],
    "float32",
    attrs,
  );
}

/** Writes value `v` as the `index`-th `bits`-wide field of `out` from byte `offset`, low bits first. */
function packBits(out: Uint8Array, offset: number, index: number, v: number, bits: number): void {
  const bit = index * bits;
  out[offset + (bit >> 3)]! |= v << (bit & 7);
}
