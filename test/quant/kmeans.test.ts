// k-means with Hamerly's bounds (quant/linalg/kmeans.ts) against plain Lloyd iterations that compare
// every point with every centroid each time: the bounds only skip work, so from the same start the
// two give the same centroids and assignments; and the final assignment is every point's nearest.

import { describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { assignNearest, kmeans } from "../../src/quant/linalg/kmeans.js";
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

  it("seeds from a sample when the points are many, and still clusters all of them", async () => {
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
    for (const [i, c] of found.entries()) {
      const want = [...centres].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!)[i]!;
      expect(Math.hypot(c[0]! - want[0]!, c[1]! - want[1]!)).toBeLessThan(0.05);
    }
  });
});
