// Exact nearest-centroid search for many short vectors (ReALLM's d = 2 and 4 sub-vectors, k ≤ 256
// centroids, up to millions of points): a grid over the points' bounding box, with cell edges at
// quantiles of the points in each coordinate (so cells are small where points and centroids are
// dense), and for each cell the list of centroids that can be nearest to some point inside it.
//
// A centroid c can be nearest to a point of box B only if its closest possible distance to B is at
// most u = min over centroids of their farthest possible distance to B: the nearest centroid of x is
// no farther than that centroid, which is at most u away from anything in B. Every centroid outside
// the list is strictly farther than some centroid in it, so scanning the list in index order with
// the same arithmetic as a full scan gives the full scan's answer, ties included (lowest index).
// Most cells list one to a few centroids, so a point costs a few comparisons instead of k.

/** Cells per coordinate by dimension: about 4,096 cells in all. d = 1 and d = 8 have no grid (full scans). */
const BINS: Record<number, number> = { 2: 64, 3: 16, 4: 8 };
/** Steps of the uniform lookup table per coordinate that cell edges are snapped to. */
const STEPS = 1024;
/** Points read per coordinate to place the quantile edges (a strided subset: deterministic). */
const EDGE_SAMPLE = 8192;

export interface CentroidGrid {
  d: number;
  bins: number;
  /** Per coordinate: its lowest and highest value (the box) and 1 / step width of the lookup table. */
  lo: Float64Array;
  hi: Float64Array;
  invStep: Float64Array;
  /** Per coordinate, [d, STEPS]: the cell index contribution (bin · bins^j) of each table step. */
  table: Int32Array;
  /** Candidates of cell i are list[start[i] … start[i + 1]), ascending centroid index. */
  start: Int32Array;
  list: Uint16Array;
}

/**
 * Whether a grid pays for itself: its dimension has one, and there are many points per centroid
 * and per cell (building it compares every cell's box with every centroid).
 */
export function gridSuits(count: number, d: number, k: number): boolean {
  const bins = BINS[d];
  return bins !== undefined && k >= 4 && count >= 64 * k && count >= 8 * bins ** d;
}

/**
 * Per coordinate: a uniform table of STEPS steps over [min, max] of the points (or over `box`), and
 * the bins, each a run of steps holding about as many points (edges at quantiles, snapped to step
 * boundaries). A value's bin is then one multiply and one table read, and its cell's box is known
 * exactly.
 */
function coordinateBins(points: Float32Array, count: number, d: number, bins: number, box?: { lo: number; hi: number }) {
  const lo = new Float64Array(d).fill(box ? box.lo : Infinity);
  const hi = new Float64Array(d).fill(box ? box.hi : -Infinity);
  if (!box) {
    for (let p = 0; p < count; p++) {
      for (let j = 0; j < d; j++) {
        const v = points[p * d + j]!;
        if (v < lo[j]!) lo[j] = v;
        if (v > hi[j]!) hi[j] = v;
      }
    }
  }
  const taken = Math.min(count, EDGE_SAMPLE);
  const stride = count / taken;
  const column = new Float64Array(taken);
  const invStep = new Float64Array(d);
  const table = new Int32Array(d * STEPS);
  // Box of each bin as [first step, end step) per coordinate.
  const firstStep = new Int32Array(d * bins);
  const endStep = new Int32Array(d * bins);
  let weight = 1;
  for (let j = 0; j < d; j++) {
    const width = hi[j]! - lo[j]!;
    invStep[j] = width > 0 ? STEPS / width : 0;
    for (let i = 0; i < taken; i++) column[i] = points[Math.floor(i * stride) * d + j]!;
    column.sort();
    let from = 0;
    for (let b = 0; b < bins; b++) {
      const quantile = column[Math.floor(((b + 1) * taken) / bins)] ?? hi[j]!;
      // At least one step per bin while steps remain; the last bin ends at the table's end.
      let to = b === bins - 1 ? STEPS : Math.round((quantile - lo[j]!) * invStep[j]!);
      to = Math.min(STEPS - (bins - 1 - b), Math.max(from + 1, to));
      firstStep[j * bins + b] = from;
      endStep[j * bins + b] = to;
      for (let s = from; s < to; s++) table[j * STEPS + s] = b * weight;
      from = to;
    }
    weight *= bins;
  }
  return { lo, hi, invStep, table, firstStep, endStep };
}

/**
 * The grid of `centroids` [k, d] over the box of `points`, or over `box` in every coordinate with its
 * edges at quantiles of `points` (then a sample of the points to look up, which must lie in the box).
 */
function buildCentroidGrid(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, box?: { lo: number; hi: number }): CentroidGrid {
  const bins = BINS[d]!;
  const { lo, hi, invStep, table, firstStep, endStep } = coordinateBins(points, count, d, bins, box);
  const cells = bins ** d;
  const start = new Int32Array(cells + 1);
  const chunks: Uint16Array[] = [];
  const boxLo = new Float64Array(d);
  const boxHi = new Float64Array(d);
  const nearSq = new Float64Array(k);
  const picked = new Uint16Array(k);
  let total = 0;
  for (let cell = 0; cell < cells; cell++) {
    // Cell index = Σ bin_j · bins^j. Its box, widened by a hair so that a value the table puts in
    // this cell after rounding is inside it (a larger box only lists more candidates).
    let rest = cell;
    for (let j = 0; j < d; j++) {
      const b = rest % bins;
      rest = (rest - b) / bins;
      const width = hi[j]! - lo[j]!;
      const slack = 1e-9 * width + 1e-30;
      const step = width / STEPS;
      boxLo[j] = lo[j]! + firstStep[j * bins + b]! * step - slack;
      boxHi[j] = lo[j]! + endStep[j * bins + b]! * step + slack;
    }
    let bound = Infinity;
    for (let c = 0; c < k; c++) {
      let near = 0;
      let far = 0;
      for (let j = 0; j < d; j++) {
        const v = centroids[c * d + j]!;
        const below = boxLo[j]! - v;
        const above = v - boxHi[j]!;
        if (below > 0) near += below * below;
        else if (above > 0) near += above * above;
        const reach = Math.max(v - boxLo[j]!, boxHi[j]! - v);
        far += reach * reach;
      }
      nearSq[c] = near;
      if (far < bound) bound = far;
    }
    // A relative slack keeps a centroid that rounding alone would drop.
    const limit = bound * (1 + 1e-9) + 1e-300;
    let n = 0;
    for (let c = 0; c < k; c++) if (nearSq[c]! <= limit) picked[n++] = c;
    chunks.push(picked.slice(0, n));
    total += n;
    start[cell + 1] = total;
  }
  const list = new Uint16Array(total);
  let at = 0;
  for (const chunk of chunks) {
    list.set(chunk, at);
    at += chunk.length;
  }
  return { d, bins, lo, hi, invStep, table, start, list };
}

/**
 * A grid of `centroids` [k, d] for points known to lie in [lo, hi] in every coordinate (ReALLM's
 * block-normalised sub-vectors lie in [−1, 1]), with cell edges at quantiles of `sample` [count, d]:
 * no pass over the points themselves. Look points up with nearestInGrid (or nearestRun2 at d = 2).
 */
export function gridOverBox(sample: Float32Array, count: number, d: number, centroids: Float32Array, k: number, lo: number, hi: number): CentroidGrid {
  if (BINS[d] === undefined) throw new RangeError(`no centroid grid for dimension ${d}`);
  return buildCentroidGrid(sample, count, d, centroids, k, { lo, hi });
}

/** Whether the point at `x[at … at + d)` lies in the grid's box (else its cell's list does not hold). */
function insideGrid(grid: CentroidGrid, x: ArrayLike<number>, at: number): boolean {
  for (let j = 0; j < grid.d; j++) {
    const v = x[at + j]!;
    if (!(v >= grid.lo[j]! && v <= grid.hi[j]!)) return false;
  }
  return true;
}

/**
 * The nearest centroid of the point at `x[at … at + d)` (lowest index on ties, as a full scan):
 * among its cell's list inside the grid's box, among every centroid outside it (a value rounded
 * just past the box of a gridOverBox).
 */
export function nearestInGrid(grid: CentroidGrid, centroids: Float32Array, x: ArrayLike<number>, at: number): number {
  const { d, start, list } = grid;
  if (!insideGrid(grid, x, at)) return nearestAmong(centroids, d, x, at, null, 0, centroids.length / d);
  let cell = 0;
  for (let j = 0; j < d; j++) cell += binPart(grid, j, x[at + j]!);
  return nearestAmong(centroids, d, x, at, list, start[cell]!, start[cell + 1]!);
}

/** The nearest (lowest index on ties) of the centroids list[from … to) (of centroids from … to when `list` is null) to the point at x[at … at + d). */
function nearestAmong(centroids: Float32Array, d: number, x: ArrayLike<number>, at: number, list: Uint16Array | null, from: number, to: number): number {
  let best = 0;
  let d1 = Infinity;
  for (let i = from; i < to; i++) {
    const c = list ? list[i]! : i;
    let dist = 0;
    for (let j = 0; j < d; j++) {
      const diff = x[at + j]! - centroids[c * d + j]!;
      dist += diff * diff;
    }
    if (dist < d1) {
      d1 = dist;
      best = c;
    }
  }
  return best;
}

/**
 * For d = 2: the nearest centroid (as nearestInGrid) of each sub-vector of values[from … to) divided
 * by `s` and rounded to float32 (all 0 when s is 0: a block-normalised run), into codes[at …]. A
 * sub-vector outside the grid's box (by rounding) is compared with every centroid. The grid's fields
 * are read once per run, not once per point: this is ReALLM's hottest loop.
 */
export function nearestRun2(grid: CentroidGrid, centroids: Float32Array, values: Float32Array, from: number, to: number, s: number, codes: Uint8Array, at: number): void {
  const { start, list, table } = grid;
  const lo0 = grid.lo[0]!;
  const lo1 = grid.lo[1]!;
  const hi0 = grid.hi[0]!;
  const hi1 = grid.hi[1]!;
  const inv0 = grid.invStep[0]!;
  const inv1 = grid.invStep[1]!;
  const k = centroids.length / 2;
  for (let j = from; j < to; j += 2, at++) {
    const x0 = s === 0 ? 0 : Math.fround(values[j]! / s);
    const x1 = s === 0 ? 0 : Math.fround(values[j + 1]! / s);
    if (!(x0 >= lo0 && x0 <= hi0 && x1 >= lo1 && x1 <= hi1)) {
      codes[at] = nearestOf(centroids, x0, x1, null, 0, k);
      continue;
    }
    // Inside the box the steps are ≥ 0, so truncation is floor; the maximum lands on the last step.
    const s0 = Math.min(STEPS - 1, ((x0 - lo0) * inv0) | 0);
    const s1 = Math.min(STEPS - 1, ((x1 - lo1) * inv1) | 0);
    const cell = table[s0]! + table[STEPS + s1]!;
    const first = start[cell]!;
    const end = start[cell + 1]!;
    // Most cells list one centroid: no distance to compare.
    codes[at] = end - first === 1 ? list[first]! : nearestOf(centroids, x0, x1, list, first, end);
  }
}

/** The nearest (lowest index on ties) of the d = 2 centroids list[from … to) (of every centroid when `list` is null) to (x0, x1). */
function nearestOf(centroids: Float32Array, x0: number, x1: number, list: Uint16Array | null, from: number, to: number): number {
  let best = 0;
  let d1 = Infinity;
  for (let i = from; i < to; i++) {
    const c = list ? list[i]! : i;
    const a = x0 - centroids[2 * c]!;
    const b = x1 - centroids[2 * c + 1]!;
    const dist = a * a + b * b;
    if (dist < d1) {
      d1 = dist;
      best = c;
    }
  }
  return best;
}

/** Cell-index contribution of coordinate j's value v: its table step, clamped (the maximum lands on the last step). */
function binPart(grid: CentroidGrid, j: number, v: number): number {
  let step = Math.floor((v - grid.lo[j]!) * grid.invStep[j]!);
  if (!(step < STEPS)) step = STEPS - 1; // (NaN too: any cell; a full scan would not do better)
  else if (step < 0) step = 0;
  return grid.table[j * STEPS + step]!;
}

/**
 * The nearest centroid of every point (lowest index on ties, as a full scan), into `assign`, through
 * a grid built for these points; returns Σ squared distances and how many assignments changed.
 * Call only where gridSuits(count, d, k).
 */
export function assignThroughGrid(points: Float32Array, count: number, d: number, centroids: Float32Array, k: number, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  const grid = buildCentroidGrid(points, count, d, centroids, k);
  return d === 2 ? assign2(grid, points, count, centroids, assign) : assignD(grid, points, count, centroids, assign);
}

function assign2(grid: CentroidGrid, points: Float32Array, count: number, centroids: Float32Array, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  const { start, list } = grid;
  let inertia = 0;
  let changed = 0;
  for (let p = 0; p < count; p++) {
    const x0 = points[2 * p]!;
    const x1 = points[2 * p + 1]!;
    const cell = binPart(grid, 0, x0) + binPart(grid, 1, x1);
    const end = start[cell + 1]!;
    let at = start[cell]!;
    let best = list[at]!;
    let a = x0 - centroids[2 * best]!;
    let b = x1 - centroids[2 * best + 1]!;
    let d1 = a * a + b * b;
    for (at++; at < end; at++) {
      const c = list[at]!;
      a = x0 - centroids[2 * c]!;
      b = x1 - centroids[2 * c + 1]!;
      const dist = a * a + b * b;
      if (dist < d1) {
        d1 = dist;
        best = c;
      }
    }
    inertia += d1;
    if (assign[p] !== best) {
      changed++;
      assign[p] = best;
    }
  }
  return { inertia, changed };
}

function assignD(grid: CentroidGrid, points: Float32Array, count: number, centroids: Float32Array, assign: Uint8Array | Uint16Array): { inertia: number; changed: number } {
  const { d, start, list } = grid;
  let inertia = 0;
  let changed = 0;
  for (let p = 0; p < count; p++) {
    const at = p * d;
    let cell = 0;
    for (let j = 0; j < d; j++) cell += binPart(grid, j, points[at + j]!);
    let best = 0;
    let d1 = Infinity;
    const end = start[cell + 1]!;
    for (let i = start[cell]!; i < end; i++) {
      const c = list[i]!;
      const ct = c * d;
      let dist = 0;
      for (let j = 0; j < d; j++) {
        const diff = points[at + j]! - centroids[ct + j]!;
        dist += diff * diff;
      }
      if (dist < d1) {
        d1 = dist;
        best = c;
      }
    }
    inertia += d1;
    if (assign[p] !== best) {
      changed++;
      assign[p] = best;
    }
  }
  return { inertia, changed };
}
