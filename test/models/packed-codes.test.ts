// Packed codes (models/parts/packed-codes.ts): for every width below a byte, the graph's integer
// unpacking gives back each code, and the constant holds bits/8 bytes per code.

import { describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { canPackCodes, packCodes, packedCodes } from "../../src/models/parts/packed-codes.js";

describe("codes packed at their width", () => {
  for (const bits of [1, 2, 3, 4, 5, 6, 7]) {
    it(`${bits}-bit codes round-trip through the graph`, async () => {
      const rng = new Rng(bits);
      const codes = Uint8Array.from({ length: 96 }, () => rng.int(1 << bits));
      // Every value the width allows appears, the extremes included.
      codes[0] = (1 << bits) - 1;
      codes[95] = (1 << bits) - 1;
      expect(packCodes(codes, bits).length).toBe((96 * bits) / 8);
      const g = new Graph();
      const out = await (await CompiledGraph.compile(g, { codes: packedCodes(g, codes, bits, "c") })).run({});
      expect(Array.from(out.codes!.data as Int32Array)).toEqual(Array.from(codes));
    });
  }

  it("only whole chunks of 8 codes below 8 bits pack", () => {
    expect([canPackCodes(5, 16), canPackCodes(5, 12), canPackCodes(8, 16)]).toEqual([true, false, false]);
  });
});
