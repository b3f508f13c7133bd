// The parts that make ReALLM's alternation cheap (session 29) against the plain computations they
// replace: the VQ of successive residuals (VqRefitter: one fused pass through a grid over [−1, 1]²,
// k-means state carried between rounds) against a brute-force nearest centroid and a fresh fit;
// the k-means refit against trainCodebook started from the last fit's centroids; and the model-wide
// shape screening and codebook carrying of quantizeReallmModel.

import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { CodebookRefitter, NearestCentroid, trainCodebook } from "../../src/quant/linalg/kmeans.js";
import { chooseReallmShapes, quantizeReallmLayer, quantizeReallmModel, reallmCandidates, withShape } from "../../src/quant/reallm.js";
import type { ReallmLinear } from "../../src/quant/types.js";
import { VqRefitter, vqQuantize } from "../../src/quant/vq.js";
import { gaussian, tinyModel } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
const nearest = new NearestCentroid({ threads: 1 });
afterAll(async () => {
  await gemm.release();
  await nearest.release();
});

/** Every sub-vector of R block-normalised as the VQ stores it, and the nearest of the centroids (lowest index on ties) by comparing with each. */
function bruteForceCodes(r: Float32Array, n: number, k: number, bs: number, scaleCodes: Uint8Array, rowScales: Float32Array, codebook: Float32Array): Uint8Array {
  const blocks = k / bs;
  const codes = new Uint8Array((n * k) / 2);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j += 2) {
      const s = (scaleCodes[i * blocks + Math.floor(j / bs)]! / 255) * rowScales[i]!;
      const x0 = s === 0 ? 0 : Math.fround(r[i * k + j]! / s);
      const x1 = s === 0 ? 0 : Math.fround(r[i * k + j + 1]! / s);
      let best = 0;
      let bestDist = Infinity;
      for (let c = 0; c < codebook.length / 2; c++) {
        const dist = (x0 - codebook[2 * c]!) ** 2 + (x1 - codebook[2 * c + 1]!) ** 2;
        if (dist < bestDist) {
          bestDist = dist;
          best = c;
        }
      }
      codes[(i * k + j) / 2] = best;
    }
  }
  return codes;
}

describe("VqRefitter", () => {
  // 128 × 512 at d = 2 is 32,768 sub-vectors: enough for the grid path (gridSuits).
  const n = 128;
  const k = 512;
  const shape = { vqDim: 2, codeBits: 4, blockSize: 64, scaleBits: 8, permuted: false };
  const r1 = Float32Array.from(gaussian(n * k, 41), (v) => 0.02 * v * Math.abs(v));
  r1.fill(0, 3 * k, 3 * k + 64); // an all-zero block
  const drift = gaussian(n * k, 42);
  const r2 = Float32Array.from(r1, (v, i) => v + 0.001 * drift[i]!);

  it("codes every sub-vector with its nearest centroid and returns Q̂ and ‖R − Q̂‖² to match, round after round", async () => {
    const vq = new VqRefitter(n, k, shape, { rng: new Rng(3), nearest, iterations: 20 });
    for (const r of [r1, r2, r1]) {
      const res = await vq.quantize(r);
      expect(Array.from(res.vqCodes)).toEqual(Array.from(bruteForceCodes(r, n, k, shape.blockSize, res.scaleCodes, res.rowScales, res.codebook)));
      let error = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < k; j++) {
          const s = (res.scaleCodes[i * (k / 64) + Math.floor(j / 64)]! / 255) * res.rowScales[i]!;
          const want = s * res.codebook[2 * res.vqCodes[(i * k + j) >> 1]! + (j & 1)]!;
          expect(res.deq[i * k + j]).toBe(Math.fround(want));
          error += (r[i * k + j]! - res.deq[i * k + j]!) ** 2;
        }
      }
      expect(res.error / error).toBeCloseTo(1, 8); // (the quantizer sums Q̂ before its float32 rounding)
    }
  });

  it("codes the first residual as vqQuantize does, and a later one from the carried k-means (never worse than it started)", async () => {
    const vq = new VqRefitter(n, k, shape, { rng: new Rng(5), nearest, iterations: 20 });
    const first = await vq.quantize(r1);
    const fresh = await vqQuantize(r1, n, k, shape, { rng: new Rng(5), nearest, iterations: 20 });
    expect(Array.from(first.codebook)).toEqual(Array.from(fresh.codebook));
    expect(first.error).toBe(fresh.error);
    // The next residual starts from the first's codebook: its fit is at least as good as coding r2
    // with that codebook unchanged would be (Lloyd only lowers the sample's inertia; the sample is most points here).
    const second = await vq.quantize(r2);
    const stale = await new VqRefitter(n, k, shape, { rng: new Rng(5), nearest, iterations: 0, init: first.codebook }).quantize(r2);
    expect(second.error).toBeLessThanOrEqual(stale.error * 1.001);
  });

  it("with a column permutation (the generic path) still codes every sub-vector with its nearest centroid", async () => {
    const vq = new VqRefitter(n, k, { ...shape, permuted: true }, { rng: new Rng(7), nearest, iterations: 10 });
    const res = await vq.quantize(r1);
    const perm = res.perm!;
    const permuted = new Float32Array(n * k);
    for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) permuted[i * k + p] = r1[i * k + perm[p]!]!;
    expect(Array.from(res.vqCodes)).toEqual(Array.from(bruteForceCodes(permuted, n, k, 64, res.scaleCodes, res.rowScales, res.codebook)));
  });
});

describe("CodebookRefitter", () => {
  it("a refit on moved points gives the centroids trainCodebook reaches from the last fit's, on the same sample", () => {
    const count = 20000;
    const points = Float32Array.from(gaussian(count * 2, 51), (v) => v * v * v);
    const move = gaussian(count * 2, 52);
    const moved = Float32Array.from(points, (v, i) => v + 0.02 * move[i]!);
    const opts = { rng: new Rng(9), iterations: 15, pointsPerCentroid: 256 };
    const refitter = new CodebookRefitter(count, 2, 16, opts);
    const first = refitter.fit(points);
    const again = refitter.fit(moved);
    // Same seed: same sample indices; from the first fit's centroids, plain Lloyd on the moved sample.
    const plain = trainCodebook(moved, count, 2, 16, { ...opts, rng: new Rng(9), init: first.centroids });
    expect(again.trainedOn).toBe(256 * 16);
    for (let i = 0; i < again.centroids.length; i++) expect(again.centroids[i]).toBeCloseTo(plain.centroids[i]!, 5);
    expect(again.iterations).toBe(plain.iterations);
  });

  it("refuses a sample of the wrong size", () => {
    const refitter = new CodebookRefitter(1000, 2, 4, { rng: new Rng(1), pointsPerCentroid: 16 });
    expect(() => refitter.fitSample(new Float32Array(10))).toThrow(/sample of 64 points/);
  });
});

describe("model-wide shape screening and carried codebooks", () => {
  const model = tinyModel("llama", 11);
  const opts = { budget: 3, seed: 4, gemm, nearest, blockSize: 32, maxIterations: 2 };

  it("screens once per matrix size on one block, and every layer of that size takes the shape that won there", async () => {
    const { qm, report } = await quantizeReallmModel(model, opts);
    const choices = report.screening;
    const sizes = new Set(report.layers.map((l) => `${qm.linears.get(l.path)!.outFeatures}x${qm.linears.get(l.path)!.inFeatures}`));
    expect(choices.length).toBe(sizes.size);
    const block = choices[0]!.layer.split(".")[2];
    for (const c of choices) {
      expect(c.layer.split(".")[2]).toBe(block); // all from one block
      const best = c.scores.reduce((a, b) => (b.error < a.error ? b : a));
      expect([c.vqDim, c.codeBits]).toEqual([best.vqDim, best.codeBits]);
    }
    for (const l of report.layers) {
      const q = qm.linears.get(l.path)!;
      const choice = choices.find((c) => c.n === q.outFeatures && c.k === q.inFeatures)!;
      expect(l.candidates).toEqual([]); // nothing scored per layer
      expect([l.spec.vqDim, l.spec.codeBits]).toEqual([choice.vqDim, choice.codeBits]);
    }
    // Deterministic for a seed, codebooks carried included.
    const again = await quantizeReallmModel(model, opts);
    for (const [p, q] of qm.linears) expect(Array.from((again.qm.linears.get(p) as ReallmLinear).vqCodes)).toEqual(Array.from((q as ReallmLinear).vqCodes));
  });

  it("a size's winner is the shape per-layer scoring picks on that layer, even where sizes disagree (2 bits per weight)", async () => {
    // At 2 bits the sizes' best shapes differ; each size keeps its own.
    const two = { ...opts, budget: 2 };
    const { report } = await quantizeReallmModel(model, two);
    const perLayer = await quantizeReallmModel(model, { ...two, shapeScreening: "layer" });
    for (const c of report.screening) {
      const same = perLayer.report.layers.find((l) => l.path === c.layer)!;
      expect([same.spec.vqDim, same.spec.codeBits]).toEqual([c.vqDim, c.codeBits]);
    }
  });

  it("'layer' scores every matrix as before, and a fixed --vq-dim/--code-bits leaves nothing to screen", async () => {
    const { report } = await quantizeReallmModel(model, { ...opts, shapeScreening: "layer" });
    expect(report.screening).toEqual([]);
    expect(report.layers.every((l) => l.candidates.length > 1)).toBe(true);
    const w = model.weights.get("model.layers.0.mlp.up_proj.weight")!;
    const [n, k] = w.shape as [number, number];
    expect(await chooseReallmShapes([{ w: w.data, n, k, path: "up", index: 0 }], { ...opts, vqDims: [2], codeBits: 4 })).toEqual([]);
  });

  it("a layer of a size not screened chooses for itself", () => {
    const choice = { n: 64, k: 256, vqDim: 2, codeBits: 4, scores: [], layer: "l", seconds: 0 };
    expect(withShape(opts, [choice], 32, 256)).toBe(opts);
    const fixed = withShape(opts, [choice], 64, 256);
    expect([fixed.vqDims, fixed.codeBits]).toEqual([[2], 4]);
    expect(reallmCandidates(64, 256, fixed)).toHaveLength(1);
  });

  it("starts a layer's k-means from the codebook stored for its shape, and stores its own", async () => {
    const w = model.weights.get("model.layers.0.mlp.up_proj.weight")!;
    const [n, k] = w.shape as [number, number];
    const codebooks = new Map<string, Float32Array>();
    const fixed = { ...opts, vqDims: [2], codeBits: 4, codebooks };
    const { layer } = await quantizeReallmLayer(w.data, n, k, fixed, "up", 1);
    expect(Array.from(codebooks.get("2:4")!)).toEqual(Array.from(layer.codebook));
    // A different start gives a different fit (the start is used), the same start the same one.
    const other = new Map([["2:4", Float32Array.from(layer.codebook, (v) => -v)]]);
    const a = await quantizeReallmLayer(w.data, n, k, { ...fixed, codebooks: other }, "up", 1);
    const b = await quantizeReallmLayer(w.data, n, k, { ...fixed, codebooks: new Map([["2:4", Float32Array.from(layer.codebook, (v) => -v)]]) }, "up", 1);
    expect(Array.from(a.layer.vqCodes)).toEqual(Array.from(b.layer.vqCodes));
    expect(Array.from(a.layer.codebook)).not.toEqual(Array.from(layer.codebook));
  });
});
