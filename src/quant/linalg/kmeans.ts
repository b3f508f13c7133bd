// k-means for vector quantization: seeded k-means++ initialisation, then Lloyd iterations until
// (almost) no point changes cluster (or `iterations` run out). Points are d-dimensional sub-vectors of a weight
// matrix (d ≤ 8, k ≤ 256 centroids), hundreds of thousands of them.
//
// The assignment step — every point against every centroid, P·k·d multiply-adds per iteration — runs
// through ONNX Runtime as one Gemm and an ArgMin (argmin_c ‖c‖² − 2·x·c, in chunks of points);
// centroid updates and k-means++ stay on the host. Written here rather than taken from ml-kmeans:
// that package takes number[][] (one JS array per point) and calls a distance function per (point,
// centroid) pair, which for 442,368 two-dimensional points (a SmolLM2 MLP matrix at d = 2) means half
// a million arrays and ~7 million calls per iteration; a pure-JS loop over 32,768 points and 128
// centroids took ~80 s for the ~200 Lloyd iterations of one ReALLM matrix search on this machine.

import { SlimtuneError } from "../../core/errors.js";
import type { Rng } from "../../core/rng.js";
import { type CompiledGraph, Graph, GraphCache, type OpDef, add, cast, gemm } from "../../engine/index.js";

const ArgMin: OpDef = { type: "ArgMin" };
/** Points per assignment run: P × k float32 scores stay ≤ 64 MB at k = 256. */
const CHUNK = 65536;

/** Nearest-centroid assignment through ORT, one compiled graph per (chunk, k, d). */
export class NearestCentroid {
  private readonly cache: GraphCache;

  constructor(opts: { threads?: number } = {}) {
    this.cache = new GraphCache({ threads: opts.threads, memoryArena: false });
  }

  private graph(p: number, k: number, d: number): Promise<CompiledGraph> {
    return this.cache.get(`${p}x${k}x${d}`, () => {
      const g = new Graph();
      const x = g.input("x", [p, d]);
      const c = g.input("c", [k, d]);
      const cn = g.input("cn", [k]);
      const scores = add(gemm(x, c, { transB: true, alpha: -2 }), cn); // ‖c‖² − 2·x·c
      const idx = g.add(ArgMin, [scores], [p], "int64", { axis: 1, keepdims: 0 });
      return { graph: g, outputs: { idx: cast(idx, "int32") } };
    });
  }

  /** Writes the nearest centroid of every point into `assign`; returns Σ squared distances and how many changed. */
  async assign(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): Promise<{ inertia: number; changed: number }> {
    // Small codebooks: the host loop beats a Gemm whose inner dimension is d.
    if (k * d <= 64) return assignNearest(points, count, d, centroids, k, assign);
    const norms = new Float32Array(k);
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += centroids[c * d + j]! ** 2;
      norms[c] = s;
    }
    let changed = 0;
    let inertia = 0;
    for (let start = 0; start < count; start += CHUNK) {
      const p = Math.min(CHUNK, count - start);
      const compiled = await this.graph(p, k, d);
      const out = await compiled.run({ x: { data: points.slice(start * d, (start + p) * d), shape: [p, d] }, c: { data: centroids, shape: [k, d] }, cn: { data: norms, shape: [k] } });
      const idx = out.idx!.data as Int32Array;
      for (let i = 0; i < p; i++) {
        const best = idx[i]!;
        const at = (start + i) * d;
        let dist = 0;
        for (let j = 0; j < d; j++) dist += (points[at + j]! - centroids[best * d + j]!) ** 2;
        inertia += dist;
        if (assign[start + i] !== best) {
          changed++;
          assign[start + i] = best;
        }
      }
    }
    return { inertia, changed };
  }

  async release(): Promise<void> {
    await this.cache.clear();
  }
}

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
  nearest: NearestCentroid;
  /** Start from these centroids [k, d] instead of k-means++ (warm start: a nearby problem's codebook). */
  init?: Float32Array;
  /** Lloyd iterations at most (default 30). */
  iterations?: number;
  /** Stop once at most this share of the points changes cluster in an iteration (default 1e-3). */
  tolerance?: number;
}

/** The nearest centroid of every point (and Σ squared distances), in place into `assign`; plain loops (tests, tiny problems). */
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
export async function kmeans(points: Float32Array, count: number, d: number, k: number, opts: KmeansOptions): Promise<KmeansResult> {
  if (!Number.isInteger(k) || k < 1 || k > 65536) throw new SlimtuneError("E_ARG", `k-means needs 1 ≤ k ≤ 65536 centroids, got ${k}`);
  if (points.length !== count * d) throw new SlimtuneError("E_SHAPE", `k-means got ${points.length} values for ${count} points of dimension ${d}`);
  if (k > count) {
    throw new SlimtuneError("E_ARG", `a codebook of ${k} centroids is larger than the ${count} sub-vectors to cluster; use at most ${Math.max(0, Math.floor(Math.log2(count)))} code bits (2^bits ≤ ${count})`);
  }
  const { rng } = opts;
  const centroids = opts.init ? Float32Array.from(opts.init) : kmeansPlusPlus(points, count, d, k, rng);
  const assign = k <= 256 ? new Uint8Array(count) : new Uint16Array(count);
  const maxIter = opts.iterations ?? 30;
  let { inertia } = await opts.nearest.assign(points, count, d, centroids, k, assign);
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
    const r = await opts.nearest.assign(points, count, d, centroids, k, assign);
    inertia = r.inertia;
    if (r.changed <= (opts.tolerance ?? 1e-3) * count) break;
  }
  return { centroids, assign, inertia, iterations };
}

/** k-means++ seeding: each next centre drawn with probability ∝ squared distance to the nearest chosen one. */
function kmeansPlusPlus(points: Float32Array, count: number, d: number, k: number, rng: Rng): Float32Array {
  const centroids = new Float32Array(k * d);
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
  return centroids;
}
