#!/usr/bin/env node
// Issue 21 item 2's question for ReALLM's k-means: what is the cheapest exact way to give every
// sub-vector its nearest centroid? On the same points and centroids, in one process, CPU seconds
// (median of 3): a full scan on the host (scanAll), the centroid grid (assignNearest: quantile
// cells, each listing the centroids that can be nearest; centroid-grid.ts), and one ORT Gemm +
// ArgMin pass (NearestCentroid's ‖c‖² − 2·x·c). The centroids are a codebook trained on the points
// (trainCodebook), as in ReALLM; the points are a 1536 × 576 Gaussian matrix (SmolLM2's MLP shape)
// scaled by block absmax, cut into d-dimensional sub-vectors. Also: the codebook's training on a
// sample (256 and 1024 points per centroid) against Lloyd on every point from the same seeds.
//
//   node bench/kmeans-assign.mjs > bench/results/kmeans-assign-s28.log   (needs dist/)

import path from "node:path";
import { root } from "./lib/harness.mjs";

const dist = (p) => import(path.join(root, "dist", p));
const { kmeans, trainCodebook, assignNearest, scanAll, NearestCentroid } = await dist("quant/linalg/kmeans.js");
const { Rng } = await dist("core/rng.js");

async function cpuSeconds(f) {
  const c0 = process.cpuUsage();
  await f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

const median3 = async (f) => [await cpuSeconds(f), await cpuSeconds(f), await cpuSeconds(f)].sort((a, b) => a - b)[1];

const nearest = new NearestCentroid({ threads: 1 });
const rng = new Rng(1);
const [rows, cols, block] = [1536, 576, 64];
const values = Float32Array.from({ length: rows * cols }, () => rng.normal());
for (let start = 0; start < values.length; start += block) {
  let m = 0;
  for (let j = start; j < start + block; j++) m = Math.max(m, Math.abs(values[j]));
  for (let j = start; j < start + block; j++) values[j] /= m;
}
console.log(`node ${process.version}; threads 1; CPU seconds, median of 3; ${rows} × ${cols} values, blocks of ${block}`);
for (const [d, k] of [[2, 32], [2, 16], [4, 256], [4, 128], [8, 256]]) {
  const count = values.length / d;
  const { centroids } = trainCodebook(values, count, d, k, { rng: new Rng(2), iterations: 10 });
  const a = new Uint8Array(count);
  const b = new Uint8Array(count);
  await nearest.assignThroughOrt(values, count, d, centroids, k, b); // sessions compiled outside the timing
  const scan = await median3(() => scanAll(values, count, d, centroids, k, a));
  const grid = await median3(() => assignNearest(values, count, d, centroids, k, a));
  const viaOrt = await median3(() => nearest.assignThroughOrt(values, count, d, centroids, k, b));
  let same = 0;
  scanAll(values, count, d, centroids, k, b);
  assignNearest(values, count, d, centroids, k, a);
  for (let i = 0; i < count; i++) if (a[i] === b[i]) same++;
  console.log(
    `d = ${d}, k = ${k}, ${count} points: full scan ${scan.toFixed(4)} s, grid ${grid.toFixed(4)} s (${(scan / grid).toFixed(2)}× the scan's speed; same assignment for ${same} of ${count}), ` +
      `ORT Gemm+ArgMin ${viaOrt.toFixed(4)} s (${(scan / viaOrt).toFixed(2)}×)`,
  );
}

// Training on a sample: inertia over every point, against Lloyd on all of them (same seeds, 10 iterations).
for (const [d, k] of [[2, 32], [4, 256]]) {
  const count = values.length / d;
  const all = await kmeans(values, count, d, k, { rng: new Rng(3), iterations: 10, pointsPerCentroid: count });
  const allS = await cpuSeconds(() => kmeans(values, count, d, k, { rng: new Rng(3), iterations: 10, pointsPerCentroid: count }));
  for (const ppc of [256, 1024]) {
    const s = await kmeans(values, count, d, k, { rng: new Rng(3), iterations: 10, pointsPerCentroid: ppc });
    const sS = await cpuSeconds(() => kmeans(values, count, d, k, { rng: new Rng(3), iterations: 10, pointsPerCentroid: ppc }));
    console.log(`d = ${d}, k = ${k}: trained on ${ppc} points per centroid ${sS.toFixed(3)} s, inertia ${(s.inertia / all.inertia).toFixed(4)}× Lloyd on all ${count} points (${allS.toFixed(3)} s)`);
  }
}
await nearest.release();
