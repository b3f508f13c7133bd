// Packing b-bit codes into 32-bit words (formats.md §1.3/§1.4): hand-computed words, the 3-bit
// straddle table, symmetric v1 constants, and exhaustive round trips along both axes.

import { describe, expect, it } from "vitest";
import { packAlongAxis, packBits, transpose, unpackAlongAxis, unpackBits } from "../../src/quant/pack.js";
import type { QuantBits } from "../../src/quant/types.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { randomCodes } from "./helpers.js";

const allBits: QuantBits[] = [2, 3, 4, 8];

/** Reference packer, one bit at a time: code i's bit t goes to stream bit b·i + t. */
function naivePack(codes: Uint8Array, bits: number): Uint32Array {
  const out = new Uint32Array((codes.length * bits) / 32);
  codes.forEach((v, i) => {
    for (let t = 0; t < bits; t++) {
      const bit = i * bits + t;
      if ((v >> t) & 1) out[bit >> 5] = out[bit >> 5]! | (1 << (bit & 31));
    }
  });
  return out;
}

describe("hand-computed words", () => {
  it("4-bit: qweight[0, n] = q0 | q1<<4 | … | q7<<28 (formats.md §1.3)", () => {
    expect(packBits(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), 4)).toEqual(Uint32Array.from([0x87654321]));
    expect(packBits(Uint8Array.from([15, 0, 0, 0, 0, 0, 0, 15]), 4)).toEqual(Uint32Array.from([0xf000000f]));
  });

  it("2-bit and 8-bit: code j at bits 2j and 8j", () => {
    expect(packBits(Uint8Array.from([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]), 2)).toEqual(Uint32Array.from([0xc0000039]));
    expect(packBits(Uint8Array.from([0x12, 0x34, 0x56, 0xff]), 8)).toEqual(Uint32Array.from([0xff563412]));
  });

  // 32 codes v0…v31 → words A, B, C; [label, index, value, A, B, C] (formats.md §1.4 table).
  const straddle: Array<[string, number, number, number, number, number]> = [
    ["v0 at A bits 0–2", 0, 7, 0x7, 0, 0],
    ["v9 at A bits 27–29", 9, 5, 5 << 27, 0, 0],
    ["v10 low 2 bits at A 30–31, top bit at B 0", 10, 0b101, 0x40000000, 0x1, 0],
    ["v10 = 0b100: only B bit 0", 10, 0b100, 0, 0x1, 0],
    ["v11 at B bits 1–3", 11, 7, 0, 0xe, 0],
    ["v20 at B bits 28–30", 20, 7, 0, 0x70000000, 0],
    ["v21 bit 0 at B 31, bits 1–2 at C 0–1", 21, 0b011, 0, 0x80000000, 0x1],
    ["v21 = 0b110: C bits 0–1 only", 21, 0b110, 0, 0, 0x3],
    ["v22 at C bits 2–4", 22, 7, 0, 0, 0x1c],
    ["v31 at C bits 29–31", 31, 7, 0, 0, 0xe0000000],
  ];
  it.each(straddle)("3-bit %s", (_label, index, value, a, b, c) => {
    const codes = new Uint8Array(32);
    codes[index] = value;
    expect(packBits(codes, 3)).toEqual(Uint32Array.from([a, b, c]));
    expect(unpackBits(Uint32Array.from([a, b, c]), 32, 3)).toEqual(codes);
  });

  it.each([
    [4, 7, 0x77777777],
    [8, 127, 0x7f7f7f7f],
    [2, 1, 0x55555555],
  ])("symmetric v1 qzeros words at %i bits are constant (stored z − 1 = %i)", (bits, stored, word) => {
    const words = packAlongAxis(new Uint8Array(2 * 64).fill(stored), 2, 64, bits as QuantBits, 1);
    expect(Array.from(new Set(words))).toEqual([word]);
  });
});

describe("round trips", () => {
  it.each(allBits)("%i bits: every value at every position of a 32-code window", (bits) => {
    const max = (1 << bits) - 1;
    const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (x, i) => x === b[i]);
    const failures: string[] = [];
    for (let pos = 0; pos < 32; pos++) {
      for (let v = 0; v <= max; v++) {
        const codes = randomCodes(64, bits, pos * 1000 + v + 1);
        codes[pos] = v;
        codes[32 + pos] = max - v;
        const words = packBits(codes, bits);
        if (!same(words, naivePack(codes, bits)) || !same(unpackBits(words, 64, bits), codes)) failures.push(`value ${v} at ${pos}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it.each(allBits)("%i bits: [K, N] along axis 0 (qweight) and [G, N] along axis 1 (qzeros)", (bits) => {
    const rows = 96;
    const cols = 64;
    const codes = randomCodes(rows * cols, bits, bits);
    const q = packAlongAxis(codes, rows, cols, bits, 0);
    expect(q.length).toBe(((rows * bits) / 32) * cols);
    expect(unpackAlongAxis(q, rows, cols, bits, 0)).toEqual(codes);
    // Column n of the words is the packed column n of the codes.
    const col5 = Uint8Array.from({ length: rows }, (_, r) => codes[r * cols + 5]!);
    const packedCol5 = packBits(col5, bits);
    packedCol5.forEach((word, r) => expect(q[r * cols + 5]).toBe(word));

    const z = packAlongAxis(codes, rows, cols, bits, 1);
    expect(z.length).toBe(rows * ((cols * bits) / 32));
    expect(unpackAlongAxis(z, rows, cols, bits, 1)).toEqual(codes);
    expect(z.subarray(0, (cols * bits) / 32)).toEqual(packBits(codes.subarray(0, cols), bits));
  });

  it("transpose is its own inverse", () => {
    const a = randomCodes(6 * 10, 8, 3);
    const t = transpose(a, 6, 10);
    expect(t[3 * 6 + 2]).toBe(a[2 * 10 + 3]);
    expect(transpose(t, 10, 6)).toEqual(a);
  });
});

describe("errors", () => {
  it("a code wider than the bit width", () => {
    expectSlimtuneError(() => packBits(new Uint8Array(32).fill(8), 3), "E_ARG", "code 8", "3 bits");
  });
  it("a packed length that is not whole words", () => {
    expectSlimtuneError(() => packBits(new Uint8Array(16), 3), "E_SHAPE", "16 codes", "multiple of 32");
    expectSlimtuneError(() => packAlongAxis(new Uint8Array(12 * 8), 12, 8, 4, 0), "E_SHAPE", "axis 0", "multiple of 8");
  });
  it("a word count that does not match the shape", () => {
    expectSlimtuneError(() => unpackAlongAxis(new Uint32Array(3), 32, 2, 4, 0), "E_SHAPE", "3 words");
  });
});
