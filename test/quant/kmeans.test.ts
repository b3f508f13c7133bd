// k-means with Hamerly's bounds (quant/linalg/kmeans.ts) against plain Lloyd iterations that compare
// every point with every centroid each time: the bounds only skip work, so from the same start the
// two give the same centroids and assignments; and the final assignment is every point's nearest.

import { describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { gridSuits } from "../../src/quant/linalg/centroid-grid.js";
import { TRAINING_POINTS_PER_CENTROID, assignNearest, kmeans, scanAll, trainCodebook } from "../../src/quant/linalg/kmeans.js";
import { gaussian } from "./helpers.js";

/** Plain Lloyd: assign all, then (update, assign all) × iterations, stopping when nothing moves. */
function plainLloyd(points: Float32Array, count: number, d: number, init: Float32Array, k: number, iterations: number) {
  const centroids = Float32Array.from(init);
  const assign = new Uint8Array(count);
  assignNearest(points, count, d, centroids, k, assign);
  for (let it = 0; it < iterations; it++) {
    const sums = new Float64Array(k * d);
    const sizes = new Float64Array(k);
    for (let p = 0; p < count; p++) {
      sizes[assign[p]!]!++;
      for (let j = 0; j < d; j++) sums[assign[p]! * d + j]! += points[p * d + j]!;
    }
    for (let c = 0; c < k; c++) if (sizes[c]! > 0) for (let j = 0; j < d; j++) centroids[c * d + j] = sums[c * d + j]! / sizes[c]!;
    if (assignNearest(points, count, d, centroids, k, assign).changed === 0) break;
  }
  return { centroids, assign };
}

describe("k-means with Hamerly's bounds", () => {
  it.each([
    [2, 32, 6000],
    [4, 16, 3000],
    [8, 8, 1000],
  ])("equals plain Lloyd iterations from the same start (d = %d, k = %d, %d points)", async (d, k, count) => {
    // Heavy-tailed points (as normalised weights are): Gaussian cubed.
    const points = Float32Array.from(gaussian(count * d, 5 * d + k), (v) => v * v * v);
    const init = Float32Array.from(points.subarray(0, k * d));
    const plain = plainLloyd(points, count, d, init, k, 25);
    const fast = await kmeans(points, count, d, k, { rng: new Rng(1), init, iterations: 25, tolerance: 0 });
    expect(Array.from(fast.assign)).toEqual(Array.from(plain.assign));
    for (let i = 0; i < init.length; i++) expect(fast.centroids[i]).toBeCloseTo(plain.centroids[i]!, 5);
    // The loop's assignment is every point's nearest centroid, and its inertia their squared distances.
    const check = Uint8Array.from(fast.assign);
    const { changed, inertia } = assignNearest(points, count, d, fast.centroids, k, check);
    expect(changed).toBe(0);
    expect(fast.inertia).toBeCloseTo(inertia, 6);
  });

  it("trains on a sample when the points are many, and still clusters all of them", async () => {
    const k = 4;
    const count = 256 * k * 3;
    const centres = [
      [-5, -5],
      [5, -5],
      [-5, 5],
      [5, 5],
    ];
    const noise = gaussian(count * 2, 9);
    const points = new Float32Array(count * 2);
    for (let p = 0; p < count; p++) for (let j = 0; j < 2; j++) points[p * 2 + j] = centres[p % 4]![j]! + 0.3 * noise[p * 2 + j]!;
    const r = await kmeans(points, count, 2, k, { rng: new Rng(2), iterations: 30 });
    const found = Array.from({ length: k }, (_, c) => [r.centroids[2 * c]!, r.centroids[2 * c + 1]!]).sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
    // Fitted on 256 points per centroid, a centre is off by about 0.3 / √256 ≈ 0.02 per coordinate.
    for (const [i, c] of found.entries()) {
      const want = [...centres].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!)[i]!;
      expect(Math.hypot(c[0]! - want[0]!, c[1]! - want[1]!)).toBeLessThan(0.1);
    }
    // Every point, sampled or not, lands in its own blob's cluster.
    for (let p = 0; p < count; p++) expect(r.assign[p]).toBe(r.assign[p % 4]);
    expect(new Set(Array.from(r.assign.subarray(0, 4))).size).toBe(4);
  });
});

describe("nearest centroid through the grid", () => {
  /** Every point against every centroid, written out here: the answer the grid must give. */
  function bruteForce(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let p = 0; p < count; p++) {
      let best = 0;
      let bestDist = Infinity;
      for (let c = 0; c < k; c++) {
        let dist = 0;
        for (let j = 0; j < d; j++) dist += (points[p * d + j]! - centroids[c * d + j]!) ** 2;
        if (dist < bestDist) {
          bestDist = dist;
          best = c;
        }
      }
      out[p] = best;
    }
    return out;
  }

  it.each([
    [2, 32, 40000],
    [2, 16, 33000],
    [3, 64, 40000],
    [4, 128, 40000],
  ])("gives every point its nearest centroid, lowest index on ties (d = %d, k = %d, %d points)", (d, k, count) => {
    expect(gridSuits(count, d, k)).toBe(true);
    // Heavy-tailed points clipped to ±1 (as block-normalised weights), many exactly on the bounds and
    // a run of exact zeros; centroids with a duplicate (a tie on every point near it) and a few
    // outside the points' box.
    const points = Float32Array.from(gaussian(count * d, 11 * d + k), (v) => Math.max(-1, Math.min(1, 0.4 * v * Math.abs(v))));
    points.fill(0, 0, 50 * d);
    const centroids = Float32Array.from(gaussian(k * d, 7 + k), (v) => 0.5 * v);
    centroids.copyWithin(3 * d, 1 * d, 2 * d);
    for (let j = 0; j < d; j++) centroids[(k - 1) * d + j] = 1.5;
    const assign = new Uint8Array(count).fill(255);
    const viaGrid = assignNearest(points, count, d, centroids, k, assign);
    const want = bruteForce(points, count, d, centroids, k);
    expect(Array.from(assign)).toEqual(Array.from(want));
    expect(Array.from(want).some((c) => c === 1)).toBe(true); // the tie is exercised: index 1 kept, its copy at 3 never
    expect(Array.from(assign).includes(3)).toBe(false);
    const scanned = Uint8Array.from(assign);
    const viaScan = scanAll(points, count, d, centroids, k, scanned);
    expect(viaScan.changed).toBe(0);
    expect(viaGrid.inertia).toBe(viaScan.inertia);
    expect(viaGrid.changed).toBe(count);
  });

  it("handles a coordinate that never varies", () => {
    const count = 40000;
    expect(gridSuits(count, 2, 16)).toBe(true);
    const points = new Float32Array(count * 2);
    const noise = gaussian(count, 4);
    for (let p = 0; p < count; p++) {
      points[2 * p] = 0.25;
      points[2 * p + 1] = noise[p]!;
    }
    const centroids = Float32Array.from(gaussian(16 * 2, 5));
    const assign = new Uint8Array(count);
    assignNearest(points, count, 2, centroids, 16, assign);
    expect(Array.from(assign)).toEqual(Array.from(bruteForce(points, count, 2, centroids, 16)));
  });
});

describe("codebook training on a sample", () => {
  it("fits on at most 256 points per centroid, the same for a fixed seed, and clusters all points about as well as training on all", async () => {
    const k = 8;
    const count = TRAINING_POINTS_PER_CENTROID * k * 20;
    const points = Float32Array.from(gaussian(count * 2, 21), (v) => v * v * v);
    const a = trainCodebook(points, count, 2, k, { rng: new Rng(4), iterations: 50 });
    const b = trainCodebook(points, count, 2, k, { rng: new Rng(4), iterations: 50 });
    expect(a.trainedOn).toBe(TRAINING_POINTS_PER_CENTROID * k);
    expect(Array.from(a.centroids)).toEqual(Array.from(b.centroids));
    const sampled = await kmeans(points, count, 2, k, { rng: new Rng(4), iterations: 50 });
    expect(Array.from(sampled.centroids)).toEqual(Array.from(a.centroids));
    // Lloyd on every point from the sampled codebook can only lower the inertia, and only a little.
    const full = await kmeans(points.subarray(0), count, 2, k, { rng: new Rng(4), iterations: 50, init: a.centroids });
    expect(full.inertia).toBeLessThanOrEqual(sampled.inertia * (1 + 1e-9));
    expect(sampled.inertia).toBeLessThan(full.inertia * 1.02);
  });
});
