// k-means for vector quantization: seeded k-means++ initialisation, then Lloyd iterations until
// (almost) no point changes cluster (or `iterations` run out). Points are d-dimensional sub-vectors of a weight
// matrix (d ≤ 8, k ≤ 256 centroids), hundreds of thousands to millions of them.
//
// As faiss does, the codebook is fitted on a random sample of at most 256 points per centroid
// (`trainCodebook`; more on request) and every point is assigned once at the end: fitting on all of
// them cost ReALLM most of its time for a codebook that a sample pins down (inertia within 1–3 %).
// k-means++ seeds from 64 points per centroid of that sample. Lloyd's loop keeps Hamerly's distance
// bounds per point, so after the first iterations only the few points near a cluster boundary are
// compared with every centroid; centroid sums are updated by the points that move. The final
// assignment goes through a centroid grid (centroid-grid.ts: exact, 2–4× a full scan at d = 2, 4);
// `NearestCentroid` keeps ORT's Gemm + ArgMin for codebooks the grid does not serve (d = 8), where
// it beats the host scan.
//
// Written here rather than taken from ml-kmeans: that package takes number[][] (one JS array per
// point) and calls a distance function per (point, centroid) pair, which for 442,368
// two-dimensional points (a SmolLM2 MLP matrix at d = 2) means half a million arrays and ~7 million
// calls per iteration.

import { SlimtuneError } from "../../core/errors.js";
import type { Rng } from "../../core/rng.js";
import { type CompiledGraph, Graph, GraphCache, type OpDef, add, cast, gemm } from "../../engine/index.js";
import { assignThroughGrid, gridSuits } from "./centroid-grid.js";

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
    // Small codebooks, and any codebook the grid serves: the host loop beats a Gemm whose inner dimension is d.
    if (k * d <= 64 || gridSuits(count, d, k)) return assignNearest(points, count, d, centroids, k, assign);
    return this.assignThroughOrt(points, count, d, centroids, k, assign);
  }

  /** assign() through ORT's Gemm + ArgMin whatever the shape (assign() picks the host loop where it is faster; bench/kmeans-assign.mjs compares the two). */
  async assignThroughOrt(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): Promise<{ inertia: number; changed: number }> {
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
  /** Start from these centroids [k, d] instead of k-means++ (warm start: a nearby problem's codebook). */
  init?: Float32Array;
  /** Lloyd iterations at most (default 30). */
  iterations?: number;
  /** Stop once at most this share of the points changes cluster in an iteration (default 1e-3). */
  tolerance?: number;
  /** Fit on a random sample of at most this many points per centroid (default TRAINING_POINTS_PER_CENTROID). */
  pointsPerCentroid?: number;
}

/**
 * The nearest centroid of every point (lowest index on ties) and Σ squared distances, in place into
 * `assign`: through a centroid grid where one pays (centroid-grid.ts: d = 2…4, many points per
 * centroid), else a full scan. Both give the same assignment.
 */
export function assignNearest(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  if (gridSuits(count, d, k)) return assignThroughGrid(points, count, d, centroids, k, assign);
  return scanAll(points, count, d, centroids, k, assign);
}

/** assignNearest by comparing every point with every centroid. */
export function scanAll(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  let inertia = 0;
  let changed = 0;
  const second = new Float64Array(2);
  for (let p = 0; p < count; p++) {
    inertia += scanPoint(points, p, d, centroids, k, second);
    const best = second[1]!;
    if (assign[p] !== best) {
      changed++;
      assign[p] = best;
    }
  }
  return { inertia, changed };
}

/**
 * Nearest and second-nearest centroid of point `p` by a full scan: returns the nearest's squared
 * distance; the second's goes to `second[0]`, the nearest's index to `second[1]`. ReALLM's d = 2 and
 * d = 4 are unrolled (twice as fast as the general loop).
 */
function scanPoint(points: Float32Array, p: number, d: number, centroids: Float32Array, k: number, second: Float64Array): number {
  const at = p * d;
  let best = 0;
  let d1 = Infinity;
  let d2 = Infinity;
  if (d === 2) {
    const x0 = points[at]!;
    const x1 = points[at + 1]!;
    for (let c = 0; c < k; c++) {
      const a = x0 - centroids[2 * c]!;
      const b = x1 - centroids[2 * c + 1]!;
      const dist = a * a + b * b;
      if (dist < d1) {
        d2 = d1;
        d1 = dist;
        best = c;
      } else if (dist < d2) d2 = dist;
    }
  } else if (d === 4) {
    const x0 = points[at]!;
    const x1 = points[at + 1]!;
    const x2 = points[at + 2]!;
    const x3 = points[at + 3]!;
    for (let c = 0; c < k; c++) {
      const ct = 4 * c;
      const a = x0 - centroids[ct]!;
      const b = x1 - centroids[ct + 1]!;
      const e = x2 - centroids[ct + 2]!;
      const f = x3 - centroids[ct + 3]!;
      const dist = a * a + b * b + e * e + f * f;
      if (dist < d1) {
        d2 = d1;
        d1 = dist;
        best = c;
      } else if (dist < d2) d2 = dist;
    }
  } else {
    for (let c = 0; c < k; c++) {
      const ct = c * d;
      let dist = 0;
      for (let j = 0; j < d; j++) {
        const diff = points[at + j]! - centroids[ct + j]!;
        dist += diff * diff;
      }
      if (dist < d1) {
        d2 = d1;
        d1 = dist;
        best = c;
      } else if (dist < d2) d2 = dist;
    }
  }
  second[0] = d2;
  second[1] = best;
  return d1;
}

/** Training points per centroid at most (faiss's default cap): the codebook is fitted on a random sample of this many, then every point is assigned once. */
export const TRAINING_POINTS_PER_CENTROID = 256;

export interface Codebook {
  /** Centroids [k, d], row-major. */
  centroids: Float32Array;
  iterations: number;
  /** Points the centroids were fitted on (all of them, or the sample). */
  trainedOn: number;
}

function checkKmeansArgs(points: Float32Array | null, count: number, d: number, k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > 65536) throw new SlimtuneError("E_ARG", `k-means needs 1 ≤ k ≤ 65536 centroids, got ${k}`);
  if (points && points.length !== count * d) throw new SlimtuneError("E_SHAPE", `k-means got ${points.length} values for ${count} points of dimension ${d}`);
  if (k > count) {
    throw new SlimtuneError("E_ARG", `a codebook of ${k} centroids is larger than the ${count} sub-vectors to cluster; use at most ${Math.max(0, Math.floor(Math.log2(count)))} code bits (2^bits ≤ ${count})`);
  }
}

/** `size` distinct point indices drawn at random (Floyd's algorithm), ascending. */
function sampleIndices(count: number, size: number, rng: Rng): Int32Array {
  const chosen = new Uint8Array(count);
  for (let j = count - size; j < count; j++) {
    const t = rng.int(j + 1);
    chosen[chosen[t] ? j : t] = 1;
  }
  const out = new Int32Array(size);
  let at = 0;
  for (let p = 0; p < count; p++) if (chosen[p]) out[at++] = p;
  return out;
}

/** The points at `indices`, into `out` [indices.length, d]. */
function gatherPoints(points: Float32Array, indices: Int32Array, d: number, out: Float32Array): Float32Array {
  if (d === 2) {
    for (let i = 0; i < indices.length; i++) {
      const p = 2 * indices[i]!;
      out[2 * i] = points[p]!;
      out[2 * i + 1] = points[p + 1]!;
    }
    return out;
  }
  for (let i = 0; i < indices.length; i++) for (let j = 0; j < d; j++) out[i * d + j] = points[indices[i]! * d + j]!;
  return out;
}

/**
 * Fits k centroids to the points without assigning them all: on a random sample of
 * pointsPerCentroid · k points when there are more (k-means++ seeding and Lloyd's
 * iterations on the sample), else on all of them. With `init`, Lloyd starts from those centroids.
 */
export function trainCodebook(points: Float32Array, count: number, d: number, k: number, opts: KmeansOptions): Codebook {
  return new CodebookRefitter(count, d, k, opts).fit(points, opts.init);
}

/**
 * A codebook fitted to successive versions of the same points, each a little moved from the last
 * (ReALLM's alternation: the residual changes little between rounds). The training sample is the
 * same points each time, and Lloyd's state carries over: each point's cluster and Hamerly's bounds,
 * loosened by how far the point moved, so a refit looks again only at the points whose bounds no
 * longer hold instead of scanning the whole sample against every centroid. The first fit is
 * trainCodebook's (same sample, same seeds); a refit continues from the last fit's centroids.
 */
export class CodebookRefitter {
  private readonly cap: number;
  private indices: Int32Array | null = null;
  private drawn = false;
  private state: LloydState | null = null;
  /** The sample's next positions, gathered here by fit(). */
  private next: Float32Array | null = null;

  constructor(
    private readonly count: number,
    private readonly d: number,
    private readonly k: number,
    private readonly opts: Omit<KmeansOptions, "init">,
  ) {
    checkKmeansArgs(null, count, d, k);
    this.cap = (opts.pointsPerCentroid ?? TRAINING_POINTS_PER_CENTROID) * k;
  }

  /** The points the codebook trains on: their indices, ascending (drawn once, at the first call), or null for all of them. */
  sample(): Int32Array | null {
    if (!this.drawn) {
      this.drawn = true;
      if (this.count > this.cap) this.indices = sampleIndices(this.count, this.cap, this.opts.rng);
    }
    return this.indices;
  }

  /** Points trained on: the sample's size, or all of them. */
  get trainedOn(): number {
    return Math.min(this.count, this.cap);
  }

  /** Fits the codebook to `points` [count, d] (from `init` on the first fit, when given); the centroids returned are a copy. */
  fit(points: Float32Array, init?: Float32Array): Codebook {
    checkKmeansArgs(points, this.count, this.d, this.k);
    const indices = this.sample();
    const train = indices ? gatherPoints(points, indices, this.d, (this.next ??= new Float32Array(this.trainedOn * this.d))) : points;
    return this.fitSample(train, init);
  }

  /**
   * Fits the codebook to the sample's points [trainedOn, d], gathered by the caller in sample()'s
   * order (all points when it is null); read, not kept.
   */
  fitSample(train: Float32Array, init?: Float32Array): Codebook {
    const { d, k, opts, trainedOn } = this;
    if (train.length !== trainedOn * d) throw new SlimtuneError("E_SHAPE", `k-means got ${train.length} values for a sample of ${trainedOn} points of dimension ${d}`);
    this.sample(); // (the rng draws the sample before the seeds, whatever the caller did first)
    const maxIter = opts.iterations ?? 30;
    const tolerance = opts.tolerance ?? 1e-3;
    if (!this.state) {
      const own = Float32Array.from(train);
      const centroids = init ? Float32Array.from(init) : kmeansPlusPlus(own, trainedOn, d, k, opts.rng);
      this.state = lloydStart(own, trainedOn, d, k, centroids);
    } else lloydMovePoints(this.state, train);
    const iterations = lloydIterate(this.state, maxIter, tolerance);
    return { centroids: Float32Array.from(this.state.centroids), iterations, trainedOn };
  }
}

/**
 * Clusters `count` points of dimension `d` (row-major in `points`) into `k` clusters: the codebook
 * from trainCodebook, then the nearest centroid of every point.
 */
export async function kmeans(points: Float32Array, count: number, d: number, k: number, opts: KmeansOptions): Promise<KmeansResult> {
  checkKmeansArgs(points, count, d, k);
  const cap = (opts.pointsPerCentroid ?? TRAINING_POINTS_PER_CENTROID) * k;
  if (count > cap) {
    const book = trainCodebook(points, count, d, k, opts);
    const assign = k <= 256 ? new Uint8Array(count) : new Uint16Array(count);
    const { inertia } = assignNearest(points, count, d, book.centroids, k, assign);
    return { centroids: book.centroids, assign, inertia, iterations: book.iterations };
  }
  const centroids = opts.init ? Float32Array.from(opts.init) : kmeansPlusPlus(points, count, d, k, opts.rng);
  const state = lloydStart(points, count, d, k, centroids);
  const iterations = lloydIterate(state, opts.iterations ?? 30, opts.tolerance ?? 1e-3);
  const assign = state.assign;
  let inertia = 0;
  for (let p = 0; p < count; p++) {
    const ct = assign[p]! * d;
    for (let j = 0; j < d; j++) inertia += (points[p * d + j]! - centroids[ct + j]!) ** 2;
  }
  return { centroids, assign, inertia, iterations };
}

/**
 * Lloyd's algorithm with Hamerly's bounds (Hamerly 2010, "Making k-means even faster"), as state that
 * outlives one run. Each point keeps an upper bound on the distance to its centroid and a lower bound
 * on the distance to every other one; when centroids (or the points) move the bounds loosen by the
 * moves, and a point is looked at again only when its bounds cross (or its centroid's nearest
 * neighbour is closer than twice the upper bound). After the first iterations almost every point is
 * skipped, so an iteration costs O(count) instead of O(count·k·d), with the same assignments as a
 * full scan every time, up to ties.
 */
interface LloydState {
  /** The points [count, d], owned by the state. */
  points: Float32Array;
  count: number;
  d: number;
  k: number;
  /** Centroids [k, d], updated in place. */
  centroids: Float32Array;
  assign: Uint8Array | Uint16Array;
  upper: Float64Array;
  lower: Float64Array;
  /** Σ of each cluster's points and their count, kept in step with `assign`. */
  sums: Float64Array;
  sizes: Float64Array;
}

/** The state with every point assigned by a full scan. */
function lloydStart(points: Float32Array, count: number, d: number, k: number, centroids: Float32Array): LloydState {
  const s: LloydState = {
    points,
    count,
    d,
    k,
    centroids,
    assign: k <= 256 ? new Uint8Array(count) : new Uint16Array(count),
    upper: new Float64Array(count),
    lower: new Float64Array(count),
    sums: new Float64Array(k * d),
    sizes: new Float64Array(k),
  };
  const second = new Float64Array(2);
  for (let p = 0; p < count; p++) {
    const d1 = scanPoint(points, p, d, centroids, k, second);
    const c = second[1]!;
    s.assign[p] = c;
    s.upper[p] = Math.sqrt(d1);
    s.lower[p] = Math.sqrt(second[0]!);
  }
  recountClusters(s);
  return s;
}

/** sums and sizes from the points and their assignment. */
function recountClusters(s: LloydState): void {
  const { points, count, d, assign, sums, sizes } = s;
  sums.fill(0);
  sizes.fill(0);
  for (let p = 0; p < count; p++) {
    const c = assign[p]!;
    sizes[c]!++;
    for (let j = 0; j < d; j++) sums[c * d + j]! += points[p * d + j]!;
  }
}

/**
 * The points move to `next` [count, d] (the same points, a little moved): each one's bounds loosen by
 * its own move, the cluster sums are recounted, and the points whose bounds no longer hold are
 * reassigned against the unchanged centroids, so the state is as a full scan would leave it.
 */
function lloydMovePoints(s: LloydState, next: Float32Array): void {
  const { count, d, upper, lower } = s;
  const old = s.points;
  for (let p = 0; p < count; p++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += (next[p * d + j]! - old[p * d + j]!) ** 2;
    m = Math.sqrt(m);
    upper[p]! += m;
    lower[p]! -= m;
  }
  old.set(next);
  recountClusters(s);
  reassign(s, null, 0, -1, 0);
}

/** Lloyd iterations from the state until at most `tolerance` of the points change cluster or `maxIter` run; returns the iterations run. */
function lloydIterate(s: LloydState, maxIter: number, tolerance: number): number {
  const { d, k, centroids, sums, sizes } = s;
  const shift = new Float64Array(k);
  const previous = new Float32Array(k * d);
  let iterations = 0;
  for (let it = 0; it < maxIter; it++) {
    iterations++;
    previous.set(centroids);
    // An empty cluster keeps its centroid.
    for (let c = 0; c < k; c++) if (sizes[c]! > 0) for (let j = 0; j < d; j++) centroids[c * d + j] = sums[c * d + j]! / sizes[c]!;
    let far = 0; // the largest move, and the largest among the other centroids
    let farAt = -1;
    let farOther = 0;
    for (let c = 0; c < k; c++) {
      let m = 0;
      for (let j = 0; j < d; j++) m += (centroids[c * d + j]! - previous[c * d + j]!) ** 2;
      m = Math.sqrt(m);
      shift[c] = m;
      if (m > far) {
        farOther = far;
        far = m;
        farAt = c;
      } else if (m > farOther) farOther = m;
    }
    if (reassign(s, shift, far, farAt, farOther) <= tolerance * s.count) break;
  }
  return iterations;
}

/**
 * One pass of Hamerly's test over every point after the centroids moved by `shift` (null: they did
 * not), rescanning the points whose bounds cross and moving them between clusters' sums; returns how
 * many changed cluster.
 */
function reassign(s: LloydState, shift: Float64Array | null, far: number, farAt: number, farOther: number): number {
  const { points, count, d, k, centroids, assign, upper, lower, sums, sizes } = s;
  const half = new Float64Array(k);
  for (let c = 0; c < k; c++) {
    let nearest = Infinity;
    for (let o = 0; o < k; o++) {
      if (o === c) continue;
      let m = 0;
      for (let j = 0; j < d; j++) m += (centroids[c * d + j]! - centroids[o * d + j]!) ** 2;
      if (m < nearest) nearest = m;
    }
    half[c] = Math.sqrt(nearest) / 2;
  }
  const second = new Float64Array(2);
  let changed = 0;
  for (let p = 0; p < count; p++) {
    const a = assign[p]!;
    if (shift) {
      upper[p]! += shift[a]!;
      lower[p]! -= a === farAt ? farOther : far;
    }
    const bound = Math.max(half[a]!, lower[p]!);
    if (upper[p]! <= bound) continue;
    let own = 0;
    for (let j = 0; j < d; j++) own += (points[p * d + j]! - centroids[a * d + j]!) ** 2;
    upper[p] = Math.sqrt(own);
    if (upper[p]! <= bound) continue;
    const d1 = scanPoint(points, p, d, centroids, k, second);
    const c = second[1]!;
    upper[p] = Math.sqrt(d1);
    lower[p] = Math.sqrt(second[0]!);
    if (c !== a) {
      changed++;
      assign[p] = c;
      sizes[a]!--;
      sizes[c]!++;
      for (let j = 0; j < d; j++) {
        const v = points[p * d + j]!;
        sums[a * d + j]! -= v;
        sums[c * d + j]! += v;
      }
    }
  }
  return changed;
}

/** Points k-means++ seeds from at most, per centroid: enough to place the seeds, at a quarter of the training sample's O(count·k·d) cost. */
const SEEDING_POINTS_PER_CENTROID = 64;

/**
 * k-means++ seeding: each next centre drawn with probability ∝ squared distance to the nearest chosen
 * one — over a random sample of the points when there are more than SEEDING_POINTS_PER_CENTROID · k
 * (Lloyd's iterations then run over all of them).
 */
function kmeansPlusPlus(all: Float32Array, allCount: number, d: number, k: number, rng: Rng): Float32Array {
  let points = all;
  let count = allCount;
  if (allCount > SEEDING_POINTS_PER_CENTROID * k) {
    count = SEEDING_POINTS_PER_CENTROID * k;
    points = new Float32Array(count * d);
    for (let i = 0; i < count; i++) {
      const p = rng.int(allCount);
      points.set(all.subarray(p * d, p * d + d), i * d);
    }
  }
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
