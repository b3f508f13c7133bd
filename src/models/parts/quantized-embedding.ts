// A quantized embedding table (and the LM head that reads it) in ONNX Runtime's contrib ops: rows
// looked up by com.microsoft.GatherBlockQuantized, logits by MatMulNBits, both over one packed
// tensor [V, blocks, block·bits/8] (low bits first), so a tied head shares the embedding's codes and
// scales in the file. The two ops agree on a layout only without explicit zero points (they pack
// them differently), so the table is symmetric: zero 2^(bits−1), both ops' default. GatherBlockQuantized
// on ORT 1.30's CPU EP takes uint8 data at 4 or 8 bits with the block on the last axis, a power of
// two ≥ 16; its scales want the data's rank, MatMulNBits' want [N, blocks]: one scale tensor, reshaped.

import { type Graph, type OpDef, type Value, reshape } from "../../engine/index.js";
import type { RtnLinear } from "../../quant/types.js";

const GatherBlockQuantized: OpDef = { type: "GatherBlockQuantized", domain: "com.microsoft" };
const MatMulNBits: OpDef = { type: "MatMulNBits", domain: "com.microsoft" };

/** Rows and logits through one table: `embed(ids)` → [...ids, C]; `head(x [M, C])` → [M, V]. */
export interface QuantizedTable {
  embed(ids: Value): Value;
  head(x: Value): Value;
}

/** Why `q` cannot be a quantized table, or null when it can. */
export function quantizedTableProblem(q: RtnLinear): string | null {
  const b = q.groupSize;
  if (q.spec.bits !== 4 && q.spec.bits !== 8) return `${q.spec.bits}-bit (GatherBlockQuantized runs 4 or 8)`;
  if (b < 16 || (b & (b - 1)) !== 0 || q.inFeatures % b !== 0) return `groups of ${b} (a power of two ≥ 16 dividing the width)`;
  if (b > 128) return `groups of ${b} (MatMulNBits takes at most 128)`;
  if (q.groupIndex) return "act-order";
  const zero = 1 << (q.spec.bits - 1);
  if (!q.zeros.every((z) => z === zero)) return "asymmetric (the two ops pack zero points differently)";
  return null;
}

/** The table's constants, created once in `g`; accuracy_level as for the other MatMulNBits layers. */
export function quantizedTable(g: Graph, q: RtnLinear, name: string, accuracyLevel: 0 | 4 = 0): QuantizedTable {
  const problem = quantizedTableProblem(q);
  if (problem) throw new Error(`${name} cannot be a quantized table: ${problem}`);
  const { outFeatures: V, inFeatures: C, groupSize: block } = q;
  const bits = q.spec.bits;
  const blocks = C / block;
  const blob = (block * bits) / 8;
  const packed = new Uint8Array(V * blocks * blob);
  for (let i = 0; i < V * C; i++) {
    const bit = i * bits;
    packed[bit >> 3]! |= q.codes[i]! << (bit & 7);
  }
  const data = g.constant(packed, [V, blocks, blob], "uint8", `${name}.qweight`);
  const scales = g.constant(q.scales, [V, blocks], "float32", `${name}.qscales`);
  const rowScales = reshape(scales, [V, blocks, 1]);
  return {
    embed(ids) {
      const rows = g.add(GatherBlockQuantized, [data, ids, rowScales], [...ids.shape, blocks, block], "float32", { bits, block_size: block, gather_axis: 0, quantize_axis: 2 });
      return reshape(rows, [...ids.shape, C]);
    },
    head(x) {
      return g.add(MatMulNBits, [x, data, scales], [x.shape[0]!, V], "float32", { K: C, N: V, bits, block_size: block, accuracy_level: accuracyLevel });
    },
  };
}
