// k-means for vector quantization: seeded k-means++ initialisation, then Lloyd iterations until no
// point changes cluster (or `iterations` run out). Points are d-dimensional sub-vectors of a weight
// matrix (d ≤ 8, k ≤ 256 centroids), hundreds of thousands of them.
//
// Written here rather than taken from ml-kmeans: that package takes number[][] (one JS array per
// point) and calls a distance function per (point, centroid) pair, which for 442,368 two-dimensional
// points (a SmolLM2 MLP matrix at d = 2) means half a million arrays and ~7 million calls per
// iteration; the flat Float32Array loops below do the same arithmetic in place.

import { SlimtuneError } from "../../core/errors.js";
import type { Rng } from "../../core/rng.js";

export interface KmeansResult {
  /** Centroids [k, d], row-major. */
  centroids: Float32Array;
  /** Cluster of each point. */
  assign: Uint8Array | Uint16Array;
  /** Σ squared distance of each point to its centroid. */
  inertia: number;
  iterations: number;
}

export interface KmeansOptions {
  rng: Rng;
  /** Lloyd iterations at most (default 30). */
  iterations?: number;
}

/** The nearest centroid of every point (and Σ squared distances), in place into `assign`. */
export function assignNearest(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  let inertia = 0;
  let changed = 0;
  for (let p = 0; p < count; p++) {
    const at = p * d;
    let best = 0;
    let bestDist = Infinity;
    for (let c = 0; c < k; c++) {
      const ct = c * d;
      let dist = 0;
      for (let j = 0; j < d; j++) {
        const diff = points[at + j]! - centroids[ct + j]!;
        dist += diff * diff;
      }
      if (dist < bestDist) {
        bestDist = dist;
        best = c;
      }
    }
    if (assign[p] !== best) {
      changed++;
      assign[p] = best;
    }
    inertia += bestDist;
  }
  return { inertia, changed };
}

/** Clusters `count` points of dimension `d` (row-major in `points`) into `k` clusters. */
export function kmeans(points: Float32Array, count: number, d: number, k: number, opts: KmeansOptions): KmeansResult {
  if (!Number.isInteger(k) || k < 1 || k > 65536) throw new SlimtuneError("E_ARG", `k-means needs 1 ≤ k ≤ 65536 centroids, got ${k}`);
  if (points.length !== count * d) throw new SlimtuneError("E_SHAPE", `k-means got ${points.length} values for ${count} points of dimension ${d}`);
  if (k > count) {
    throw new SlimtuneError("E_ARG", `a codebook of ${k} centroids is larger than the ${count} sub-vectors to cluster; use at most ${Math.max(0, Math.floor(Math.log2(count)))} code bits (2^bits ≤ ${count})`);
  }
  const { rng } = opts;
  const centroids = new Float32Array(k * d);
  // k-means++: each next centre drawn with probability ∝ squared distance to the nearest chosen one.
  const nearest = new Float64Array(count).fill(Infinity);
  let pick = rng.int(count);
  for (let c = 0; c < k; c++) {
    centroids.set(points.subarray(pick * d, pick * d + d), c * d);
    let total = 0;
    for (let p = 0; p < count; p++) {
      let dist = 0;
      for (let j = 0; j < d; j++) {
        const diff = points[p * d + j]! - centroids[c * d + j]!;
        dist += diff * diff;
      }
      if (dist < nearest[p]!) nearest[p] = dist;
      total += nearest[p]!;
    }
    if (c + 1 === k) break;
    if (total === 0) {
      // Fewer distinct points than k: the remaining centres repeat a point (empty clusters are harmless).
      pick = rng.int(count);
      continue;
    }
    let target = rng.uniform() * total;
    pick = count - 1;
    for (let p = 0; p < count; p++) {
      target -= nearest[p]!;
      if (target <= 0) {
        pick = p;
        break;
      }
    }
  }
  const assign = k <= 256 ? new Uint8Array(count) : new Uint16Array(count);
  const maxIter = opts.iterations ?? 30;
  let { inertia } = assignNearest(points, count, d, centroids, k, assign);
  let iterations = 0;
  const sums = new Float64Array(k * d);
  const sizes = new Float64Array(k);
  for (let it = 0; it < maxIter; it++) {
    iterations++;
    sums.fill(0);
    sizes.fill(0);
    for (let p = 0; p < count; p++) {
      const c = assign[p]!;
      sizes[c]!++;
      for (let j = 0; j < d; j++) sums[c * d + j]! += points[p * d + j]!;
    }
    for (let c = 0; c < k; c++) {
      // An empty cluster keeps its centroid.
      if (sizes[c]! > 0) for (let j = 0; j < d; j++) centroids[c * d + j] = sums[c * d + j]! / sizes[c]!;
    }
    const r = assignNearest(points, count, d, centroids, k, assign);
    inertia = r.inertia;
    if (r.changed === 0) break;
  }
  return { centroids, assign, inertia, iterations };
}
