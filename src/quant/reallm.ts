// ReALLM (Leconte et al. 2024, arXiv 2405.13155): each matrix W ≈ L₁·L₂ + Q̂ with Q̂ vector-quantized
// (quant/vq.ts), the split chosen per matrix inside a bits-per-weight budget that counts everything
// stored (codes, codebook, block scales, permutation, L₁ and L₂ — kinds/reallm.ts reallmStorageOf).
//
// The choice: for each sub-vector length d (default 2 and 4) the two largest codebooks that fit
// the budget, each with the largest rank the remaining bits pay for (or a fixed --rank). Every
// candidate is scored by one round of the alternating init (L = SVD_r(W), Q̂ = VQ(W − L)) on a
// random subset of rows (screenCandidates); the lowest Frobenius error wins. A whole model screens
// once per matrix size (chooseReallmShapes: the first layer of each size in its middle block) and
// every layer of that size takes that winner. The winner is fitted on the whole matrix,
// alternating until its error rises or the iterations run out (quant/lowrank.ts;
// each round's SVD warm-started from the last, in float32). With permutation "auto", the winner is
// fitted with and without the in-block column permutation and the better kept.

import type { FloatWeights, HostParam } from "../arch/params.js";
import { linearLayers } from "../arch/llama/shapes.js";
import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { reallmBitsPerWeight } from "./kinds/reallm.js";
import type { HostGemm } from "./linalg/host-gemm.js";
import type { NearestCentroid } from "./linalg/kmeans.js";
import { alternatingInit } from "./lowrank.js";
import { type TruncatedSvd, truncatedSvd } from "./linalg/svd.js";
import { type VqResult, VqRefitter, vqQuantize } from "./vq.js";
import type { QuantizedLinear, QuantizedModel, ReallmLinear, ReallmSpec } from "./types.js";
import { mostCommonSpec } from "./types.js";

export interface ReallmOptions {
  /** Bits per weight for each matrix, everything stored counted. */
  budget: number;
  /** A fixed rank for every matrix (default: the largest the budget leaves after the VQ part). */
  rank?: number;
  /** Sub-vector lengths to consider (default [2, 4]; scalar d = 1 lost on every ref-llama-5m matrix tried); one value with `codeBits` fixes the VQ shape. */
  vqDims?: number[];
  /** A fixed codebook size 2^codeBits (default: searched). */
  codeBits?: number;
  /** Columns per absmax block (default 64, or the largest of 64, 32, 16 dividing K). */
  blockSize?: number;
  lowRankDtype?: "float16" | "float32";
  /** Column permutation within blocks: always, never (default), or whichever fits better. */
  permute?: boolean | "auto";
  /** Cap on the rank as a share of min(N, K) (default 0.5). */
  maxRankShare?: number;
  /** Alternations at most for the chosen shape (default 6). */
  maxIterations?: number;
  /**
   * Lloyd iterations per k-means (default 30; warm-started after the first alternation). They run on
   * the codebook's training sample, so they are cheap; 10 left the benchmark's layers 0.5–1 % worse.
   */
  kmeansIterations?: number;
  /**
   * Codebooks of layers already quantized, by VQ shape ("d:codeBits"): a layer's first k-means starts
   * from the one of its shape instead of k-means++, and its own kept codebook is stored back
   * (quantizeReallmModel passes one map through the model, in layer order). The block-normalised
   * sub-vectors of every layer spread alike, so the start is close and Lloyd converges in a few
   * iterations instead of running out of them from a cold start.
   */
  codebooks?: Map<string, Float32Array>;
  /**
   * Where candidate shapes are scored, for a whole model (quantizeReallmModel): "model" (default)
   * scores them once per matrix size, on the middle block's layer of that size, and gives every
   * layer of that size the winner; "layer" scores them on each matrix. The shapes rank the same on
   * every layer of a size by a wide margin (the benchmark's: 0.24 against ≥ 0.29), so per-layer
   * scoring mostly repeated the same answer.
   */
  shapeScreening?: "model" | "layer";
  seed: number;
  gemm: HostGemm;
  nearest: NearestCentroid;
}

export interface ReallmCandidate {
  spec: ReallmSpec;
  bitsPerWeight: number;
  /** ‖W − L₁L₂ − Q̂‖_F after one alternation. */
  error?: number;
}

export interface ReallmLayerReport {
  path: string;
  spec: ReallmSpec;
  bitsPerWeight: number;
  /** Relative Frobenius error ‖W − Ŵ‖ / ‖W‖ of the kept iterate. */
  relativeError: number;
  /** The alternating init's error per iteration. */
  errors: number[];
  /** The shapes scored (relative error after one alternation, estimated on a sample of rows: screenCandidates). */
  candidates: Array<{ rank: number; vqDim: number; codeBits: number; bitsPerWeight: number; error: number }>;
  svdSeconds: number;
  kmeansSeconds: number;
  seconds: number;
}

function blockSizeFor(k: number, d: number, wanted?: number): number {
  if (wanted !== undefined) return wanted;
  for (const b of [64, 32, 16, 8, 4, 2, 1]) if (k % b === 0 && b % d === 0) return b;
  return d;
}

/** The ReALLM shapes for an [n, k] matrix that fit `opts.budget`, best-rank for each (d, codebook). */
export function reallmCandidates(n: number, k: number, opts: Omit<ReallmOptions, "gemm" | "seed" | "nearest">, layer = "the layer"): ReallmCandidate[] {
  const dims = opts.vqDims ?? [2, 4];
  const lowRankDtype = opts.lowRankDtype ?? "float16";
  const maxRank = Math.floor(Math.min(n, k) * (opts.maxRankShare ?? 0.5));
  const permuted = opts.permute === true;
  const out: ReallmCandidate[] = [];
  let cheapest = Infinity;
  let cheapestShape = "";
  for (const d of dims) {
    if (k % d !== 0) continue;
    const blockSize = blockSizeFor(k, d, opts.blockSize);
    if (k % blockSize !== 0 || blockSize % d !== 0) continue;
    const fits: ReallmCandidate[] = [];
    const codeRange = opts.codeBits !== undefined ? [opts.codeBits] : [1, 2, 3, 4, 5, 6, 7, 8];
    for (const c of codeRange) {
      if (1 << c > (n * k) / d) continue;
      const base: ReallmSpec = { scheme: "reallm", rank: 0, vqDim: d, codeBits: c, blockSize, scaleBits: 8, permuted, lowRankDtype };
      const vqBits = reallmBitsPerWeight(base, n, k);
      if (vqBits < cheapest) {
        cheapest = vqBits;
        cheapestShape = `d ${d}, 2^${c} centroids`;
      }
      if (vqBits > opts.budget) continue;
      const perRank = ((lowRankDtype === "float16" ? 16 : 32) * (n + k)) / (n * k);
      let rank = Math.min(maxRank, Math.floor((opts.budget - vqBits) / perRank + 1e-9));
      if (opts.rank !== undefined) {
        if (opts.rank > rank) continue;
        rank = opts.rank;
      }
      const spec = { ...base, rank };
      fits.push({ spec, bitsPerWeight: reallmBitsPerWeight(spec, n, k) });
    }
    // The two largest codebooks that fit: most bits in Q̂, or one code bit traded for rank.
    out.push(...fits.sort((a, b) => b.spec.codeBits - a.spec.codeBits).slice(0, 2));
  }
  if (out.length === 0) {
    if (opts.rank !== undefined) {
      const free = reallmCandidates(n, k, { ...opts, rank: undefined }, layer);
      const largest = Math.max(-1, ...free.map((c) => c.spec.rank));
      throw new SlimtuneError(
        "E_ARG",
        largest >= 0
          ? `--rank ${opts.rank} does not fit ${opts.budget} bits per weight on ${layer} [${n}, ${k}] (each rank costs ${((16 * (n + k)) / (n * k)).toFixed(3)} bits per weight at float16); the largest rank that fits is ${largest} — lower --rank or raise --bits-per-weight`
          : `--bits-per-weight ${opts.budget} is below the smallest ReALLM shape for ${layer} [${n}, ${k}] (${cheapest.toFixed(3)} bits per weight with ${cheapestShape} and rank 0); raise the budget`,
      );
    }
    throw new SlimtuneError(
      "E_ARG",
      `--bits-per-weight ${opts.budget} is below the smallest ReALLM shape for ${layer} [${n}, ${k}]: ${Number.isFinite(cheapest) ? `${cheapest.toFixed(3)} bits per weight (${cheapestShape}, rank 0, codes + block scales + codebook)` : "no VQ shape divides its columns"}; raise --bits-per-weight`,
    );
  }
  return out;
}

function toLayer(spec: ReallmSpec, n: number, k: number, l1: Float32Array, l2: Float32Array, vq: Omit<VqResult, "deq" | "error">): ReallmLinear {
  return { kind: "reallm", spec: { ...spec, permuted: vq.perm !== null }, outFeatures: n, inFeatures: k, l1, l2, vqCodes: vq.vqCodes, codebook: vq.codebook, scaleCodes: vq.scaleCodes, rowScales: vq.rowScales, perm: vq.perm, bias: null };
}

/**
 * The kept shape's codebook is fitted on up to this many sub-vectors per centroid (4× faiss's
 * default): on the benchmark's layers 256 left the error 0.5–1 % above Lloyd on every sub-vector,
 * 1024 within 0.5 %, at little cost for codebooks of 16–32 entries.
 */
const FIT_POINTS_PER_CENTROID = 1024;

const DEFAULT_KMEANS_ITERATIONS = 30;

/** Sub-vectors each candidate shape is scored on: about this many, in whole rows drawn at random. */
const SCREENING_SUBVECTORS = 16384;

/**
 * Each candidate's relative error ‖W − L₁L₂ − Q̂‖ / ‖W‖ after one round of the alternating init,
 * estimated on a random subset of rows: L₁L₂ from one SVD of the whole W at the largest candidate
 * rank (truncated per candidate: the leading singular triplets of a rank-R fit are the rank-r
 * fit; factors not rounded to float16), Q̂ by the candidate's vector quantizer on the sampled
 * rows' residual. The shapes differ by far more than the sampling error (on the benchmark's
 * layers: 0.24 against ≥ 0.29), and scoring every shape on the whole matrix cost more than
 * fitting the winner.
 */
async function screenCandidates(w: Float32Array, n: number, k: number, candidates: ReallmCandidate[], opts: ReallmOptions, seed: number, permuted: boolean, layer: string): Promise<{ scores: number[]; svdSeconds: number }> {
  const rng = new Rng(seed + 2);
  const maxDim = Math.max(...candidates.map((c) => c.spec.vqDim));
  const rows = Math.min(n, Math.max(16, Math.ceil((SCREENING_SUBVECTORS * maxDim) / k)));
  const chosen = new Set<number>();
  for (let j = n - rows; j < n; j++) {
    const t = rng.int(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  const picked = Int32Array.from(chosen).sort();
  const maxRank = Math.max(...candidates.map((c) => c.spec.rank));
  const t0 = performance.now();
  // One power iteration: ranking shapes needs the low-rank part roughly, not to the last digit.
  const svd = maxRank > 0 ? await truncatedSvd(w, n, k, maxRank, { gemm: opts.gemm, rng: new Rng(seed + 1), powerIterations: 1 }) : null;
  const svdSeconds = (performance.now() - t0) / 1000;
  const sub = new Float32Array(rows * k);
  let norm = 0;
  for (let i = 0; i < rows; i++) {
    const row = w.subarray(picked[i]! * k, (picked[i]! + 1) * k);
    sub.set(row, i * k);
    for (let j = 0; j < k; j++) norm += row[j]! * row[j]!;
  }
  const scores: number[] = [];
  for (const cand of candidates) {
    const residual = Float32Array.from(sub);
    const r = Math.min(cand.spec.rank, svd?.rank ?? 0);
    if (svd && r > 0) subtractLowRank(residual, picked, svd, r, k);
    const vqShape = { vqDim: cand.spec.vqDim, codeBits: cand.spec.codeBits, blockSize: cand.spec.blockSize, scaleBits: cand.spec.scaleBits, permuted };
    // Ranking only needs a rough fit: 5 Lloyd iterations on 32 sub-vectors per centroid.
    const vq = await vqQuantize(residual, rows, k, vqShape, { rng: new Rng(seed), nearest: opts.nearest, iterations: Math.min(5, opts.kmeansIterations ?? DEFAULT_KMEANS_ITERATIONS), pointsPerCentroid: 32, layer });
    scores.push(Math.sqrt(vq.error / norm));
  }
  return { scores, svdSeconds };
}

/** The key of a VQ shape in ReallmOptions.codebooks. */
function shapeKey(spec: Pick<ReallmSpec, "vqDim" | "codeBits">): string {
  return `${spec.vqDim}:${spec.codeBits}`;
}

/** The k-means and SVD seeds of the layer at `layerSeed` (its index in the model). */
function layerSeedOf(opts: ReallmOptions, layerSeed: number): number {
  return opts.seed * 1000 + layerSeed * 7;
}

/** Every candidate with its screened error (screenCandidates), in the layer report's form. */
async function scoredCandidates(w: Float32Array, n: number, k: number, candidates: ReallmCandidate[], opts: ReallmOptions, seed: number, layer: string): Promise<{ tried: ReallmLayerReport["candidates"]; svdSeconds: number }> {
  const { scores, svdSeconds } = await screenCandidates(w, n, k, candidates, opts, seed, opts.permute === true, layer);
  const tried = candidates.map((c, i) => ({ rank: c.spec.rank, vqDim: c.spec.vqDim, codeBits: c.spec.codeBits, bitsPerWeight: c.bitsPerWeight, error: scores[i]! }));
  return { tried, svdSeconds };
}

/** The VQ shape chosen for every matrix of one size [n, k]. */
export interface ReallmShapeChoice {
  n: number;
  k: number;
  vqDim: number;
  codeBits: number;
  /** Each candidate shape's relative error on the screened layer (one round, on a sample of its rows). */
  scores: Array<{ vqDim: number; codeBits: number; rank: number; error: number }>;
  /** The layer scored. */
  layer: string;
  seconds: number;
}

/** A layer to screen shapes on: its weights [n, k], its path and its index among the model's layers (seeds). */
export interface ScreenedLayer {
  w: Float32Array;
  n: number;
  k: number;
  path: string;
  index: number;
}

/**
 * One VQ shape (d, codebook size) per matrix size for a whole model: the first of `layers` of each
 * size [n, k] scores every candidate as quantizeReallmLayer would score it there, and its winner
 * serves every matrix of that size (their candidates, ranks included, are the same: they depend on
 * the size and the budget only). Per size, not one shape for all: at 2 bits per weight on
 * ref-llama-5m the narrow layers' best shape does not fit the others' budget, and one shared shape
 * cost 3 % of error. A size whose shape is fixed by the options (one candidate) is left out.
 */
export async function chooseReallmShapes(layers: ScreenedLayer[], opts: ReallmOptions): Promise<ReallmShapeChoice[]> {
  const out: ReallmShapeChoice[] = [];
  for (const l of layers) {
    if (out.some((c) => c.n === l.n && c.k === l.k)) continue;
    const started = performance.now();
    const candidates = reallmCandidates(l.n, l.k, opts, l.path);
    if (candidates.length < 2) continue;
    const { tried } = await scoredCandidates(l.w, l.n, l.k, candidates, opts, layerSeedOf(opts, l.index), l.path);
    const best = tried.reduce((a, b) => (b.error < a.error ? b : a));
    const scores = tried.map((c) => ({ vqDim: c.vqDim, codeBits: c.codeBits, rank: c.rank, error: c.error }));
    out.push({ n: l.n, k: l.k, vqDim: best.vqDim, codeBits: best.codeBits, scores, layer: l.path, seconds: (performance.now() - started) / 1000 });
  }
  return out;
}

/** `opts` with the VQ shape fixed to the choice for matrices of size [n, k], if there is one; else unchanged (the layer screens for itself). */
export function withShape(opts: ReallmOptions, choices: ReallmShapeChoice[], n: number, k: number): ReallmOptions {
  const choice = choices.find((c) => c.n === n && c.k === k);
  return choice ? { ...opts, vqDims: [choice.vqDim], codeBits: choice.codeBits } : opts;
}

/** out[i] −= (U Σ Vᵀ)[rows[i]] truncated to rank r, for the sampled rows. */
function subtractLowRank(out: Float32Array, rows: Int32Array, svd: TruncatedSvd, r: number, k: number): void {
  const acc = new Float64Array(k);
  for (let i = 0; i < rows.length; i++) {
    acc.fill(0);
    for (let t = 0; t < r; t++) {
      const a = svd.u[rows[i]! * svd.rank + t]! * svd.s[t]!;
      for (let c = 0; c < k; c++) acc[c]! += a * svd.vt[t * k + c]!;
    }
    for (let c = 0; c < k; c++) out[i * k + c]! -= acc[c]!;
  }
}

/** ReALLM-quantizes one matrix W [n, k] within the budget. */
export async function quantizeReallmLayer(w: Float32Array, n: number, k: number, opts: ReallmOptions, layer = "the layer", layerSeed = 0): Promise<{ layer: ReallmLinear; report: ReallmLayerReport }> {
  const started = performance.now();
  const candidates = reallmCandidates(n, k, opts, layer);
  let norm = 0;
  for (let i = 0; i < w.length; i++) norm += w[i]! * w[i]!; // (for-of over a typed array is several times slower)
  norm = Math.sqrt(norm);
  let kmeansSeconds = 0;
  let svdSeconds = 0;
  const fit = async (spec: ReallmSpec, permuted: boolean, maxIterations: number, seed: number, kmeansIterations = opts.kmeansIterations ?? DEFAULT_KMEANS_ITERATIONS) => {
    const vqShape = { vqDim: spec.vqDim, codeBits: spec.codeBits, blockSize: spec.blockSize, scaleBits: spec.scaleBits, permuted };
    // Each alternation's k-means continues from the previous one (same training sample, its
    // clusters and bounds kept): the residual moves only a little.
    const start = opts.codebooks?.get(shapeKey(spec));
    const vq = new VqRefitter(n, k, vqShape, { rng: new Rng(seed), nearest: opts.nearest, iterations: kmeansIterations, pointsPerCentroid: FIT_POINTS_PER_CENTROID, layer, ...(start ? { init: start } : {}) });
    const res = await alternatingInit(w, n, k, spec.rank, async (residual) => {
      const { deq, error, ...kept } = await vq.quantize(residual);
      return { deq, error, state: kept };
    }, { gemm: opts.gemm, rng: new Rng(seed + 1), maxIterations, float16Factors: spec.lowRankDtype === "float16", warmStart: true, warmPowerIterations: 0, float32: true });
    kmeansSeconds += res.quantizeSeconds;
    svdSeconds += res.svdSeconds;
    return res;
  };
  const seed = layerSeedOf(opts, layerSeed);
  const permuteFirst = opts.permute === true;
  let tried: ReallmLayerReport["candidates"] = [];
  let winner: ReallmCandidate = candidates[0]!;
  if (candidates.length > 1) {
    const t0 = performance.now();
    const screened = await scoredCandidates(w, n, k, candidates, opts, seed, layer);
    svdSeconds += screened.svdSeconds;
    kmeansSeconds += (performance.now() - t0) / 1000 - screened.svdSeconds;
    tried = screened.tried;
    winner = candidates[screened.tried.reduce((at, c, i, all) => (c.error < all[at]!.error ? i : at), 0)]!;
  }
  let best = await fit(winner.spec, permuteFirst, opts.maxIterations ?? 6, seed);
  if (opts.permute === "auto") {
    const withPerm = await fit(winner.spec, true, opts.maxIterations ?? 6, seed);
    if (Math.min(...withPerm.errors) < Math.min(...best.errors)) best = withPerm;
  }
  opts.codebooks?.set(shapeKey(winner.spec), best.state.codebook);
  const spec: ReallmSpec = { ...winner.spec, permuted: best.state.perm !== null };
  const q = toLayer(spec, n, k, best.factors.l1, best.factors.l2, best.state);
  return {
    layer: q,
    report: {
      path: layer,
      spec: q.spec,
      bitsPerWeight: reallmBitsPerWeight(q.spec, n, k),
      relativeError: Math.min(...best.errors) / norm,
      errors: best.errors.map((e) => e / norm),
      candidates: tried,
      svdSeconds,
      kmeansSeconds,
      seconds: (performance.now() - started) / 1000,
    },
  };
}

export interface ReallmModelReport {
  budget: number;
  /** The model-wide shape choices, one per matrix size (shapeScreening "model"); empty when each layer chose, or the shape was fixed. */
  screening: ReallmShapeChoice[];
  layers: ReallmLayerReport[];
  seconds: number;
}

/** The layers of the block holding the model's middle linear layer, with their weights. */
function middleBlock(model: FloatWeights, layers: ReturnType<typeof linearLayers>): ScreenedLayer[] {
  if (layers.length === 0) return [];
  const block = layers[Math.floor(layers.length / 2)]!.layer;
  const out: ScreenedLayer[] = [];
  for (const [index, l] of layers.entries()) {
    if (l.layer !== block) continue;
    const w = model.weights.get(`${l.path}.weight`);
    if (w) out.push({ w: w.data, n: l.outFeatures, k: l.inFeatures, path: l.path, index });
  }
  return out;
}

/** ReALLM-quantizes every linear layer of `model`'s blocks. */
export async function quantizeReallmModel(model: FloatWeights, opts: ReallmOptions, onProgress?: (done: number, total: number, path: string) => void): Promise<{ qm: QuantizedModel; report: ReallmModelReport }> {
  const started = performance.now();
  const layers = linearLayers(model.config);
  // Every layer's budget is checked before any work.
  for (const l of layers) reallmCandidates(l.outFeatures, l.inFeatures, opts, l.path);
  const screening = (opts.shapeScreening ?? "model") === "model" ? await chooseReallmShapes(middleBlock(model, layers), opts) : [];
  // Each layer's k-means starts from the last layer's codebook of its shape.
  const carried: ReallmOptions = { ...opts, codebooks: opts.codebooks ?? new Map() };
  const linears = new Map<string, QuantizedLinear>();
  const reports: ReallmLayerReport[] = [];
  const owned = new Set<string>();
  for (const [i, l] of layers.entries()) {
    const w = model.weights.get(`${l.path}.weight`);
    if (!w) throw new SlimtuneError("E_ARG", `model has no weight "${l.path}.weight"; ReALLM needs a LLaMA-family model loaded with LlamaModel.load`);
    const { layer, report } = await quantizeReallmLayer(w.data, l.outFeatures, l.inFeatures, withShape(carried, screening, l.outFeatures, l.inFeatures), l.path, i);
    const bias = model.weights.get(`${l.path}.bias`);
    if (bias) layer.bias = bias.data;
    linears.set(l.path, layer);
    reports.push(report);
    owned.add(`${l.path}.weight`).add(`${l.path}.bias`);
    onProgress?.(i + 1, layers.length, l.path);
  }
  const dense = new Map<string, HostParam>();
  for (const [name, p] of model.weights) if (!owned.has(name)) dense.set(name, p);
  const spec = mostCommonSpec([...linears.values()].map((q) => q.spec as ReallmSpec))!;
  return {
    qm: { config: model.config, spec, linears, dense, sourceDir: model.sourceDir, method: { name: "reallm", config: { budget_bits_per_weight: opts.budget } } },
    report: { budget: opts.budget, screening, layers: reports, seconds: (performance.now() - started) / 1000 },
  };
}
