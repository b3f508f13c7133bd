// ReALLM's host maths: k-means on data with known clusters, the alternating low-rank + quantized init
// on matrices with known structure, bits-per-weight accounting, the per-matrix choice within a
// budget (and its errors), the slimtune-reallm round trip and the layer's graph.

import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { loadReallmFolder, saveReallmFolder } from "../../src/formats/quantized/index.js";
import { quantizedLinear } from "../../src/models/parts/quantized-linear.js";
import { dequantize, quantizeLinear } from "../../src/quant/kinds/index.js";
import { dequantizeReallm, reallmBitsPerWeight, reallmStorageOf } from "../../src/quant/kinds/reallm.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid, kmeans } from "../../src/quant/linalg/kmeans.js";
import { truncatedSvd } from "../../src/quant/linalg/svd.js";
import { alternatingInit } from "../../src/quant/lowrank.js";
import { quantizeReallmLayer, quantizeReallmModel, reallmCandidates } from "../../src/quant/reallm.js";
import { sizeReport } from "../../src/quant/size.js";
import type { ReallmLinear, ReallmSpec } from "../../src/quant/types.js";
import { vqQuantize } from "../../src/quant/vq.js";
import { expectSlimtuneError, tempDir } from "../formats/helpers.js";
import { expectLinearGraph, gaussian, tinyModel } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
const nearest = new NearestCentroid({ threads: 1 });
afterAll(async () => {
  await gemm.release();
  await nearest.release();
});
const dir = tempDir("reallm");

describe("k-means", () => {
  it("recovers well-separated clusters and their centres", async () => {
    const centres = [
      [-0.8, -0.6],
      [0.7, -0.5],
      [-0.4, 0.9],
      [0.6, 0.6],
    ];
    const per = 500;
    const noise = gaussian(centres.length * per * 2, 5);
    const points = new Float32Array(centres.length * per * 2);
    centres.forEach(([x, y], c) => {
      for (let i = 0; i < per; i++) {
        const at = (c * per + i) * 2;
        points[at] = x! + 0.03 * noise[at]!;
        points[at + 1] = y! + 0.03 * noise[at + 1]!;
      }
    });
    const r = await kmeans(points, centres.length * per, 2, 4, { rng: new Rng(1), iterations: 50, tolerance: 0 });
    for (const [x, y] of centres) {
      let best = Infinity;
      for (let c = 0; c < 4; c++) best = Math.min(best, Math.hypot(r.centroids[2 * c]! - x!, r.centroids[2 * c + 1]! - y!));
      expect(best).toBeLessThan(0.01);
    }
    // Each point in its own blob's cluster: within-cluster spread only (2 · 0.03² per point).
    expect(r.inertia / (centres.length * per)).toBeLessThan(2 * 0.03 ** 2 * 1.2);
  });

  it("refuses a codebook larger than the points", async () => {
    await expect(kmeans(new Float32Array(20), 10, 2, 16, { rng: new Rng(1) })).rejects.toThrow(/16 centroids is larger than the 10 sub-vectors/);
  });
});

describe("alternating low-rank + quantized init", () => {
  // W = L (rank 4, dominant) + noise: the SVD takes L, the quantizer the noise.
  const n = 96;
  const k = 128;
  const r = 4;
  const u = gaussian(n * r, 31);
  const v = gaussian(r * k, 32);
  const noise = gaussian(n * k, 33);
  const w = new Float32Array(n * k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let t = 0; t < r; t++) s += u[i * r + t]! * v[t * k + j]!;
      w[i * k + j] = s + 0.05 * noise[i * k + j]!;
    }
  }
  const spec = { scheme: "rtn" as const, bits: 3 as const, groupSize: 32, symmetric: false };
  const quant = (x: Float32Array) => {
    const q = quantizeLinear(x, n, k, spec);
    return { deq: dequantize(q), state: q };
  };
  const norm = Math.sqrt(w.reduce((a, b) => a + b * b, 0));

  it("captures the low-rank part and beats the quantizer alone by far", async () => {
    const res = await alternatingInit(w, n, k, r, quant, { gemm, rng: new Rng(3), maxIterations: 6 });
    const alone = quant(w).deq;
    const errAlone = Math.sqrt(w.reduce((a, x, i) => a + (x - alone[i]!) ** 2, 0)) / norm;
    const kept = Math.min(...res.errors) / norm;
    expect(kept).toBeLessThan(errAlone / 5);
    // The kept error is the best one; the loop stops at the first rise (or after 6 rounds).
    expect(res.errors.length <= 6).toBe(true);
    if (res.errors.length < 6) expect(res.errors[res.errors.length - 1]!).toBeGreaterThanOrEqual(res.errors[res.errors.length - 2]!);
    // L₁L₂ is (close to) the true low-rank part: the residual left for Q is noise-sized.
    const l = new Float32Array(n * k);
    for (let i = 0; i < n; i++) for (let t = 0; t < r; t++) for (let j = 0; j < k; j++) l[i * k + j]! += res.factors.l1[i * r + t]! * res.factors.l2[t * k + j]!;
    let off = 0;
    for (let i = 0; i < w.length; i++) off += (w[i]! - l[i]!) ** 2;
    expect(Math.sqrt(off / w.length)).toBeLessThan(0.06);
  });

  it("warm-started rounds (the SVD from the previous L₂, one power iteration) reach the cold rounds' errors", async () => {
    const cold = await alternatingInit(w, n, k, r, quant, { gemm, rng: new Rng(3), maxIterations: 4 });
    const warm = await alternatingInit(w, n, k, r, quant, { gemm, rng: new Rng(3), maxIterations: 4, warmStart: true });
    expect(warm.errors[0]).toBe(cold.errors[0]); // the first round has nothing to start from
    expect(Math.min(...warm.errors)).toBeLessThan(Math.min(...cold.errors) * 1.001);
  });

  it("float32 rounds (W − Q̂, its SVD's products and L₁L₂ in float32) reach the float64 rounds' errors", async () => {
    const f64 = await alternatingInit(w, n, k, r, quant, { gemm, rng: new Rng(3), maxIterations: 4, warmStart: true });
    const f32 = await alternatingInit(w, n, k, r, quant, { gemm, rng: new Rng(3), maxIterations: 4, warmStart: true, float32: true });
    expect(f32.errors.length).toBe(f64.errors.length);
    f32.errors.forEach((e, i) => expect(e).toBeCloseTo(f64.errors[i]!, 4));
  });

  it("an SVD started from the right singular subspace finds the singular values with no power iteration", async () => {
    const a = Float64Array.from(w);
    const exact = await truncatedSvd(a, n, k, r, { gemm, rng: new Rng(5), powerIterations: 4 });
    const started = await truncatedSvd(a, n, k, r, { gemm, rng: new Rng(6), powerIterations: 0, oversample: 0, start: exact.vt });
    const random = await truncatedSvd(a, n, k, r + 2, { gemm, rng: new Rng(6), powerIterations: 0, oversample: 0 });
    for (let j = 0; j < r; j++) expect(started.s[j]).toBeCloseTo(exact.s[j]!, 8);
    // The same from float32 A (products in float32), to float32's precision.
    const single = await truncatedSvd(Float32Array.from(a), n, k, r, { gemm, rng: new Rng(6), powerIterations: 0, oversample: 0, start: exact.vt });
    for (let j = 0; j < r; j++) expect(single.s[j]! / exact.s[j]!).toBeCloseTo(1, 5);
    // From a random start without power iterations the noise leaks in: the smallest kept value is off.
    expect(Math.abs(random.s[r - 1]! - exact.s[r - 1]!)).toBeGreaterThan(1e-6);
  });

  it("with ReALLM's vector quantizer", async () => {
    const shape = { vqDim: 2, codeBits: 4, blockSize: 32, scaleBits: 8, permuted: false };
    const res = await alternatingInit(w, n, k, r, async (x) => {
      const vq = await vqQuantize(x, n, k, shape, { rng: new Rng(1), nearest });
      return { deq: vq.deq, state: vq };
    }, { gemm, rng: new Rng(3), maxIterations: 4 });
    const vqAlone = await vqQuantize(w, n, k, shape, { rng: new Rng(1), nearest });
    expect(Math.min(...res.errors)).toBeLessThan(Math.sqrt(vqAlone.error) / 5);
  });
});

describe("bits per weight", () => {
  it("counts codes, codebook, block scales, row scales, permutation and both factors", () => {
    const spec: ReallmSpec = { scheme: "reallm", rank: 8, vqDim: 2, codeBits: 4, blockSize: 64, scaleBits: 8, permuted: true, lowRankDtype: "float16" };
    const s = reallmStorageOf(spec, 256, 704, false);
    expect(s.codeBits).toBe(256 * 352 * 4); // 2 bits per weight
    expect(s.codebookBytes).toBe(16 * 2 * 2);
    expect(s.scaleBytes).toBe(256 * 11 + 2 * 256);
    expect(s.permutationBytes).toBe(704);
    expect(s.lowRankBytes).toBe(2 * 8 * (256 + 704));
    const bits = 256 * 352 * 4 + 8 * (64 + 256 * 11 + 512 + 704 + 2 * 8 * 960);
    expect(reallmBitsPerWeight(spec, 256, 704)).toBeCloseTo(bits / (256 * 704), 12);
  });

  it("chooses every matrix's shape within the budget, and names what does not fit", () => {
    for (const budget of [2, 3, 4]) {
      for (const c of reallmCandidates(256, 704, { budget })) expect(c.bitsPerWeight).toBeLessThanOrEqual(budget + 1e-9);
    }
    expectSlimtuneError(() => reallmCandidates(256, 256, { budget: 3, rank: 64 }, "L"), "E_ARG", "--rank 64 does not fit 3 bits per weight on L [256, 256]", "the largest rank that fits is");
    expectSlimtuneError(() => reallmCandidates(256, 256, { budget: 0.2 }, "L"), "E_ARG", "--bits-per-weight 0.2 is below the smallest ReALLM shape for L", "raise --bits-per-weight");
    expectSlimtuneError(() => reallmCandidates(4, 8, { budget: 8, vqDims: [2], codeBits: 5, rank: 0 }, "tiny"), "E_ARG", "below the smallest");
  });
});

describe("ReALLM layers and folders", () => {
  const model = tinyModel("llama", 7);
  let layer: ReallmLinear;

  it("quantizes a layer within 3 bits per weight with a lower error than RTN at that size", async () => {
    const w = model.weights.get("model.layers.0.mlp.up_proj.weight")!;
    const [n, k] = w.shape as [number, number];
    const res = await quantizeReallmLayer(w.data, n, k, { budget: 3, seed: 1, gemm, nearest, blockSize: 32 }, "up");
    layer = res.layer;
    expect(res.report.bitsPerWeight).toBeLessThanOrEqual(3);
    const deq = dequantizeReallm(layer);
    const norm = Math.sqrt(w.data.reduce((a, b) => a + b * b, 0));
    const err = Math.sqrt(w.data.reduce((a, x, i) => a + (x - deq[i]!) ** 2, 0)) / norm;
    expect(err).toBeCloseTo(res.report.relativeError, 4);
    const rtn = dequantize(quantizeLinear(w.data, n, k, { scheme: "rtn", bits: 2, groupSize: 32, symmetric: false })); // 2.5 bits per weight with scales and zeros
    const rtnErr = Math.sqrt(w.data.reduce((a, x, i) => a + (x - rtn[i]!) ** 2, 0)) / norm;
    expect(err).toBeLessThan(rtnErr);
  });

  it("runs in the graph as x·Ŵᵀ, with Q̂ dequantized at load or gathered from its codebook", async () => {
    const q: ReallmLinear = { ...layer, perm: Int32Array.from({ length: layer.inFeatures }, (_, i) => (i % 32 < 16 ? i + 16 : i - 16)), spec: { ...layer.spec, permuted: true } };
    for (const vq of ["dequantized", "gather"] as const) {
      await expectLinearGraph((x) => quantizedLinear(x.graph, q, "l", { vq })(x), dequantizeReallm(q), 3, q.inFeatures, q.outFeatures, 4);
    }
  });

  it("saves and loads a whole model exactly, and reports its size with everything counted", async () => {
    const { qm } = await quantizeReallmModel(model, { budget: 3, seed: 2, gemm, nearest, blockSize: 32, permute: true, maxIterations: 2 });
    const out = path.join(dir, "tiny-reallm");
    saveReallmFolder(out, qm, { budgetBitsPerWeight: 3 });
    const back = loadReallmFolder(out);
    expect([...back.linears.keys()]).toEqual([...qm.linears.keys()]);
    for (const [p, a] of qm.linears) {
      const b = back.linears.get(p) as ReallmLinear;
      const q = a as ReallmLinear;
      expect(b.spec).toEqual(q.spec);
      for (const key of ["l1", "l2", "vqCodes", "codebook", "scaleCodes", "rowScales"] as const) expect(Array.from(b[key]), `${p} ${key}`).toEqual(Array.from(q[key]));
      expect(b.perm ? Array.from(b.perm) : null).toEqual(q.perm ? Array.from(q.perm) : null);
    }
    const report = sizeReport(qm);
    for (const l of report.layers) expect(l.bitsPerWeightAll).toBeLessThanOrEqual(3 + 1e-9);
    expect(report.bitsPerWeightAll).toBeLessThanOrEqual(3);
    expect(report.lowRankBytes).toBeGreaterThan(0);
    expect(report.codebookBytes).toBeGreaterThan(0);
  });
});
