// Codes of `bits` < 8 stored packed in a graph constant and unpacked by standard integer ops, so a
// file holds them at their width (ReALLM's 5-bit codebook indices take 5 bits, not a byte). Codes go
// 8 to a chunk of `bits` bytes, low bits first; code j of a chunk starts at bit j·bits, in byte
// ⌊j·bits/8⌋, and runs into the next byte when (j·bits mod 8) + bits > 8. Unpacking gathers those two
// bytes per code position (the same 8 positions in every chunk) and takes
// ((lo + 256·hi) div 2^shift) mod 2^bits in int32.

import { type Graph, type OpDef, type Value, add, cast, div, mul, reshape } from "../../engine/index.js";

const GatherOp: OpDef = { type: "Gather" };
const ModOp: OpDef = { type: "Mod" };

/** Whether `count` codes of `bits` pack into whole chunks (else they are stored a byte each). */
export const canPackCodes = (bits: number, count: number) => bits >= 1 && bits < 8 && count % 8 === 0;

export function packCodes(codes: Uint8Array, bits: number): Uint8Array {
  const out = new Uint8Array((codes.length / 8) * bits);
  for (let i = 0; i < codes.length; i++) {
    const bit = i * bits;
    out[bit >> 3]! |= (codes[i]! << (bit & 7)) & 0xff;
    if ((bit & 7) + bits > 8) out[(bit >> 3) + 1]! |= codes[i]! >> (8 - (bit & 7));
  }
  return out;
}

/** The codes as int32 [count] from a packed constant (created once in `g`). */
export function packedCodes(g: Graph, codes: Uint8Array, bits: number, name: string): Value {
  const chunks = codes.length / 8;
  const data = cast(g.constant(packCodes(codes, bits), [chunks, bits], "uint8", name), "int32");
  const lo = new Int32Array(8);
  const hi = new Int32Array(8);
  const hiWeight = new Int32Array(8);
  const shift = new Int32Array(8);
  for (let j = 0; j < 8; j++) {
    const bit = j * bits;
    lo[j] = bit >> 3;
    // A code ending inside its first byte reads no second byte (its index is kept in range, its weight 0).
    const spills = (bit & 7) + bits > 8;
    hi[j] = spills ? (bit >> 3) + 1 : bit >> 3;
    hiWeight[j] = spills ? 256 : 0;
    shift[j] = 1 << (bit & 7);
  }
  const at = (idx: Int32Array, n: string) => g.add(GatherOp, [data, g.constant(idx, [8], "int32", `${name}.${n}`)], [chunks, 8], "int32", { axis: 1 });
  const word = add(at(lo, "lo"), mul(at(hi, "hi"), g.constant(hiWeight, [8], "int32", `${name}.hi_weight`)));
  const shifted = div(word, g.constant(shift, [8], "int32", `${name}.shift`));
  const code = g.add(ModOp, [shifted, g.constant(Int32Array.of(1 << bits), [1], "int32", `${name}.modulus`)], [chunks, 8], "int32", { fmod: 0 });
  return reshape(code, [chunks * 8]);
}
