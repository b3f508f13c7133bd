// ONNX Runtime's com.microsoft MatMulNBits on a frozen integer layer: Y = A · dequant(B)ᵀ with
// dequant = (code − zero) · scale per block, for evaluation (no gradient). 2, 4 and 8 bits; 3-bit
// codes are widened to 4 (same values), since ORT refuses 3 — for exports stored at 3 bits and
// widened by the graph itself (packThreeBit), so the file keeps their size.

import { type Graph, type OpDef, type Value, add, cast, mul, reshape } from "../../engine/index.js";
import type { RtnLinear } from "../../quant/types.js";
import { canPackCodes, packedCodes } from "./packed-codes.js";

const MatMulNBits: OpDef = { type: "MatMulNBits", domain: "com.microsoft" };
const GatherOp: OpDef = { type: "Gather" };

/** Blocks must be a power of two in [16, 128]; per-channel layers reuse one scale across blocks. */
function blockSizeFor(q: RtnLinear): number {
  if (q.groupSize !== q.inFeatures) return q.groupSize;
  for (const b of [128, 64, 32, 16]) if (q.inFeatures % b === 0) return b;
  return 0;
}

export function canUseMatMulNBits(q: RtnLinear): boolean {
  const b = blockSizeFor(q);
  return b >= 16 && b <= 128 && (b & (b - 1)) === 0 && q.groupSize % b === 0;
}

/**
 * The layer through MatMulNBits, its packed constants created once in `g`. accuracy_level 0
 * computes in float32 (exact); 4 quantizes activations to int8 per block and runs integer kernels,
 * 3–5× faster at one token (engine-facts.md), for generation.
 */
export function matMulNBits(g: Graph, q: RtnLinear, name: string, accuracyLevel: 0 | 4 = 0, packThreeBit = false): (x: Value) => Value {
  const { outFeatures: N, inFeatures: K, groupSize } = q;
  const bits = q.spec.bits === 3 ? 4 : q.spec.bits;
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
      packBits(zeroPoints, n * zpRow, kb, q.zeros[n * G + grp]!, bits);
      for (let j = 0; j < block; j++) {
        packBits(packed, (n * blocks + kb) * blob, j, q.codes[n * K + kb * block + j]!, bits);
      }
    }
  }
  const attrs = { K, N, bits, block_size: block, accuracy_level: accuracyLevel };
  const weight =
    packThreeBit && q.spec.bits === 3 && canPackCodes(3, N * K)
      ? widenedThreeBit(g, q.codes, [N, blocks, blob], name)
      : g.constant(packed, [N, blocks, blob], "uint8", `${name}.nbits_weight`);
  const blockScales = g.constant(scales, [N * blocks], "float32", `${name}.nbits_scales`);
  const zeros = g.constant(zeroPoints, [N * zpRow], "uint8", `${name}.nbits_zeros`);
  // A [..., K] → [..., N]: rows of any rank (the fused decoder keeps its stream [B, T, C]).
  return (x) => g.add(MatMulNBits, [x, weight, blockScales, zeros], [...x.shape.slice(0, -1), N], "float32", attrs);
}

/**
 * MatMulNBits' 4-bit weight computed in the graph from the codes stored at 3 bits (a file then holds
 * 3 bits per weight; ONNX Runtime folds this into a constant when it loads the graph). The 4-bit
 * layout is the codes in row-major order, two to a byte, low nibble first.
 */
function widenedThreeBit(g: Graph, codes: Uint8Array, shape: number[], name: string): Value {
  const pairs = reshape(packedCodes(g, codes, 3, `${name}.codes_3bit`), [codes.length / 2, 2]);
  const column = (j: number) => g.add(GatherOp, [pairs, g.constant(Int32Array.of(j), [1], "int32", `${name}.nibble${j}`)], [codes.length / 2, 1], "int32", { axis: 1 });
  const bytes = add(column(0), mul(column(1), g.constant(Int32Array.of(16), [1], "int32", `${name}.sixteen`)));
  return reshape(cast(bytes, "uint8"), shape);
}

/** Writes value `v` as the `index`-th `bits`-wide field of `out` from byte `offset`, low bits first. */
function packBits(out: Uint8Array, offset: number, index: number, v: number, bits: number): void {
  const bit = index * bits;
  out[offset + (bit >> 3)]! |= v << (bit & 7);
}
