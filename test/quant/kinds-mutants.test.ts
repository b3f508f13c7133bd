// The quantized kinds (src/quant/kinds) on layers small enough to work out by hand: what each kind
// stores, the dispatch by kind, act-order dequantization, ReALLM's Q̂ + L₁·L₂, and the corner cases
// mutation testing found unguarded. quantize-model.test.ts covers the same code through a whole model,
// but too slowly to run once per mutant.

import { describe, expect, it } from "vitest";
import { dequantize, layerStorage, quantizeLinear } from "../../src/quant/kinds/index.js";
import { quantizeNf4 } from "../../src/quant/kinds/nf4.js";
import { type RtnStats, quantizeRtn, rtnCode, rtnGroupParams } from "../../src/quant/kinds/rtn.js";
import type { Nf4Linear, QuantSpec, ReallmLinear, ReallmSpec, RtnLinear } from "../../src/quant/types.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { gaussian } from "./helpers.js";

const rtnSpec: QuantSpec = { scheme: "rtn", bits: 3, groupSize: 32, symmetric: false };
const nf4Spec: QuantSpec = { scheme: "nf4", bits: 4, groupSize: 16, symmetric: true };

describe("layerStorage counts every stored part of a layer", () => {
  it("RTN [8, 64], 3 bits, groups of 32: codes and zeros at 3 bits, F16 scales, an I32 g_idx, an F16 bias", () => {
    const q = quantizeRtn(gaussian(8 * 64, 1), 8, 64, rtnSpec);
    expect(layerStorage(q)).toEqual({
      codeBits: 1536, // 8·64·3
      scaleBytes: 32, // 16 groups · 2
      zeroBits: 48, // 16 groups · 3
      groupIndexBytes: 256, // 64 rows · 4
      codebookBytes: 0,
      permutationBytes: 0,
      lowRankBytes: 0,
      biasBytes: 0,
    });
    expect(layerStorage({ ...q, bias: new Float32Array(8) }).biasBytes).toBe(16);
  });

  it("NF4 [8, 64], blocks of 16: 4-bit codes, F32 absmax per block, an F32 bias", () => {
    const q = quantizeNf4(gaussian(8 * 64, 2), 8, 64, nf4Spec);
    expect(layerStorage(q)).toEqual({
      codeBits: 2048, // 8·64·4
      scaleBytes: 128, // 32 blocks · 4
      zeroBits: 0,
      groupIndexBytes: 0,
      codebookBytes: 0,
      permutationBytes: 0,
      lowRankBytes: 0,
      biasBytes: 0,
    });
    expect(layerStorage({ ...q, bias: new Float32Array(8) }).biasBytes).toBe(32);
  });

  it("ReALLM: block-scale codes rounded up to whole bytes, F16 row maxima, codebook, permutation, F32 factors, bias", () => {
    const q = reallmLayer();
    // 2 rows · 2 blocks · 3 bits = 12 bits → 2 bytes, + 2 rows · 2 bytes of row maxima.
    expect(layerStorage({ ...q, spec: { ...q.spec, scaleBits: 3 } })).toEqual({
      codeBits: 4, // 2 rows · 2 sub-vectors · 1 bit
      scaleBytes: 6,
      zeroBits: 0,
      groupIndexBytes: 0,
      codebookBytes: 8, // 2 centroids · 2 values · 2 bytes
      permutationBytes: 4,
      lowRankBytes: 24, // 4 bytes · rank 1 · (2 + 4)
      biasBytes: 8, // 2 · 4 bytes
    });
    expect(layerStorage({ ...q, bias: null, spec: { ...q.spec, permuted: false } })).toMatchObject({ permutationBytes: 0, biasBytes: 0 });
  });
});

describe("quantizeLinear dispatches on the spec's scheme, passing the options on", () => {
  const w = gaussian(4 * 64, 3);

  it("rtn → quantizeRtn, nf4 → quantizeNf4, and dequantize picks the layer's own kind", () => {
    const r = quantizeLinear(w, 4, 64, rtnSpec) as RtnLinear;
    expect(r).toEqual(quantizeRtn(w, 4, 64, rtnSpec));
    const f = quantizeLinear(w, 4, 64, nf4Spec) as Nf4Linear;
    expect(f).toEqual(quantizeNf4(w, 4, 64, nf4Spec));
    // The two kinds dequantize differently; each must use its own formula.
    expect(dequantize(r)[5]).toBeCloseTo(r.scales[0]! * (r.codes[5]! - r.zeros![0]!), 6);
    expect(dequantize(f)[5]).not.toBeCloseTo(dequantize(r)[5]!, 6);
  });

  it("counts groups into the caller's stats and names the caller's layer in errors", () => {
    const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
    quantizeLinear(w, 4, 64, rtnSpec, { stats });
    expect(stats.groups).toBe(8);
    const bad = Float32Array.from(w);
    bad[70] = Infinity;
    expectSlimtuneError(() => quantizeLinear(bad, 4, 64, rtnSpec, { layer: "L.q_proj" }), "E_ARG", "weight [1, 6] of L.q_proj is Infinity");
    expectSlimtuneError(() => quantizeLinear(bad, 4, 64, nf4Spec, { layer: "L.k_proj" }), "E_ARG", "weight [1, 6] of L.k_proj is Infinity");
    // In a later group the column is the group's start plus the offset.
    bad[70] = 0;
    bad[104] = NaN;
    expectSlimtuneError(() => quantizeLinear(bad, 4, 64, rtnSpec, { layer: "L.v_proj" }), "E_ARG", "weight [1, 40] of L.v_proj is NaN");
    expectSlimtuneError(() => quantizeLinear(bad, 4, 64, nf4Spec, { layer: "L.o_proj" }), "E_ARG", "weight [1, 40] of L.o_proj is NaN");
  });
});

describe("argument checks of the grid quantizers", () => {
  it.each([
    ["n = 0", 0, 4, 0],
    ["k = 0", 4, 0, 0],
    ["fractional n", 1.5, 2, 3],
    ["fractional k", 2, 1.5, 3],
  ])("E_SHAPE for %s, naming 'the layer' when no layer is given", (_label, n, k, len) => {
    const w = new Float32Array(len);
    const spec = (s: QuantSpec): QuantSpec => ({ ...s, groupSize: "channel" });
    expectSlimtuneError(() => quantizeRtn(w, n, k, spec(rtnSpec)), "E_SHAPE", "the layer", `[${n}, ${k}]`);
    expectSlimtuneError(() => quantizeNf4(w, n, k, spec(nf4Spec)), "E_SHAPE", "the layer", `[${n}, ${k}]`);
  });

  it("NF4 refuses a wrong length and a NaN, naming the weight", () => {
    expectSlimtuneError(() => quantizeNf4(new Float32Array(63), 1, 64, nf4Spec), "E_SHAPE", "63 values", "[1, 64] needs 64");
    expectSlimtuneError(() => quantizeRtn(new Float32Array(9), 2, 4, rtnSpec), "E_SHAPE", "9 values", "[2, 4] needs 8");
    const w = new Float32Array(64);
    w[17] = NaN;
    expectSlimtuneError(() => quantizeNf4(w, 1, 64, nf4Spec), "E_ARG", "weight [0, 17] of the layer is NaN");
    expectSlimtuneError(() => quantizeRtn(w, 1, 64, rtnSpec), "E_ARG", "weight [0, 17] of the layer is NaN");
  });
});

describe("RTN corner cases", () => {
  it("a layer with one input column (K = 1) quantizes, per channel, in both grid kinds", () => {
    const w = Float32Array.from([0.5, -2]);
    const q = quantizeRtn(w, 2, 1, { ...rtnSpec, bits: 4, groupSize: "channel" });
    expect(Array.from(dequantize(q))).toEqual(Array.from(w));
    expect(Array.from(dequantize(quantizeNf4(w, 2, 1, { ...nf4Spec, groupSize: "channel" })))).toEqual(Array.from(w));
  });

  it("rtnCode clamps to [0, 2^b − 1] a weight outside the group's grid (GPTQ's updated weights can be)", () => {
    expect(rtnCode(-5, 1, 2, 3)).toBe(0);
    expect(rtnCode(-2, 1, 2, 3)).toBe(0);
    expect(rtnCode(0.4, 1, 2, 3)).toBe(2);
    expect(rtnCode(1, 1, 2, 3)).toBe(3);
    expect(rtnCode(9, 1, 2, 3)).toBe(3);
  });

  it("symmetric all-zero group: s = 2/(2^b − 1), z = 2^(b−1), dequantized to exact zeros", () => {
    expect(rtnGroupParams(0, 0, 4, true, true)).toEqual({ s: Math.fround(2 / 15), z: 8 });
    const q = quantizeRtn(new Float32Array(32), 1, 32, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: true });
    expect(Array.from(new Set(dequantize(q)))).toEqual([0]);
  });

  it("symmetric group: the larger of |lo| and hi sets the scale", () => {
    expect(rtnGroupParams(-3, 1, 2, true, true)).toEqual({ s: 2, z: 2 });
    expect(rtnGroupParams(-1, 3, 2, true, true)).toEqual({ s: 2, z: 2 });
  });

  it("with act-order, column j dequantizes with the scale and zero of group g_idx[j] of its own row", () => {
    const q: RtnLinear = {
      kind: "rtn",
      spec: { scheme: "rtn", bits: 2, groupSize: 2, symmetric: false },
      outFeatures: 2,
      inFeatures: 4,
      groupSize: 2,
      codes: Uint8Array.from([0, 1, 2, 3, 3, 2, 1, 0]),
      scales: Float32Array.from([2, 0.5, 1, 4]),
      zeros: Uint8Array.from([1, 3, 0, 2]),
      groupIndex: Int32Array.from([1, 0, 1, 0]),
      bias: null,
    };
    expect(Array.from(dequantize(q))).toEqual([-1.5, 0, -0.5, 4, 4, 2, -4, 0]);
    // Without g_idx the same codes use contiguous groups.
    expect(Array.from(dequantize({ ...q, groupIndex: undefined }))).toEqual([-2, 0, -0.5, 0, 3, 2, -4, -8]);
  });
});

/**
 * A ReALLM layer [2, 4] worked out by hand: blocks of 2 columns, 2-dimensional sub-vectors, a
 * 2-entry codebook, 2-bit block-scale codes (÷3), the first block's columns swapped, rank 1.
 */
function reallmLayer(): ReallmLinear {
  const spec: ReallmSpec = { scheme: "reallm", rank: 1, vqDim: 2, codeBits: 1, blockSize: 2, scaleBits: 2, permuted: true, lowRankDtype: "float32" };
  return {
    kind: "reallm",
    spec,
    outFeatures: 2,
    inFeatures: 4,
    l1: Float32Array.from([1, 0]),
    l2: Float32Array.from([0.5, 0, 0, 0.25]),
    vqCodes: Uint8Array.from([1, 0, 0, 1]),
    codebook: Float32Array.from([1, 2, -1, 0.5]),
    scaleCodes: Uint8Array.from([3, 1, 2, 3]),
    rowScales: Float32Array.from([3, 6]),
    perm: Int32Array.from([1, 0, 2, 3]),
    bias: Float32Array.from([0, 0]),
  };
}

describe("ReALLM dequantization: Ŵ = Q̂ + L₁·L₂", () => {
  it("scales each block by code/(2^bits − 1) · row maximum, places sub-vectors through perm, adds the factors", () => {
    // Row 0: block scales 3/3·3 = 3 and 1/3·3 = 1; codes 1, 0 → [−3, 1.5] at columns 1, 0 and [1, 2];
    //        plus 1·[0.5, 0, 0, 0.25]. Row 1: scales 2/3·6 = 4 and 6; codes 0, 1 → [4, 8] swapped, [−6, 3].
    expect(Array.from(dequantize(reallmLayer()))).toEqual([2, -3, 1, 2.25, 8, 4, -6, 3]);
  });

  it("rank 2: row i gets Σ_j L₁[i, j] · L₂[j, :]", () => {
    const q = reallmLayer();
    const r2: ReallmLinear = { ...q, spec: { ...q.spec, rank: 2 }, l1: Float32Array.from([1, 2, 0, 3]), l2: Float32Array.from([0.5, 0, 0, 0.25, 1, -1, 0, 0]) };
    // Q̂ rows [1.5, −3, 1, 2] and [8, 4, −6, 3], plus [2.5, −2, 0, 0.25] and [3, −3, 0, 0].
    expect(Array.from(dequantize(r2))).toEqual([4, -5, 1, 2.25, 11, 1, -6, 3]);
  });

  it("without a permutation, positions are columns; rank 0 adds nothing", () => {
    const q = reallmLayer();
    const plain: ReallmLinear = { ...q, perm: null, spec: { ...q.spec, rank: 0, permuted: false }, l1: new Float32Array(0), l2: new Float32Array(0) };
    expect(Array.from(dequantize(plain))).toEqual([-3, 1.5, 1, 2, 4, 8, -6, 3]);
  });
});
