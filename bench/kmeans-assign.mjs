#!/usr/bin/env node
// Issue 21 item 2's question for ReALLM's k-means: would one ORT Gemm-based distance pass per Lloyd
// iteration (NearestCentroid: ‖c‖² − 2·x·c in a Gemm, then ArgMin) beat the loop k-means runs now?
// On the same points and centroids, in one process, CPU seconds (median of 3): a full assignment
// by the host scan (assignNearest), the same through ORT, and what kmeans() spends per further
// Lloyd iteration with Hamerly's bounds (11 iterations minus 1, over 10). Points: a 576 × 576
// Gaussian matrix (SmolLM2's q_proj shape) cut into d-dimensional sub-vectors.
//
//   node bench/kmeans-assign.mjs > bench/results/kmeans-assign-s27.log   (needs dist/)

import path from "node:path";
import { root } from "./lib/harness.mjs";

const dist = (p) => import(path.join(root, "dist", p));
const { kmeans, assignNearest, NearestCentroid } = await dist("quant/linalg/kmeans.js");
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
const values = Float32Array.from({ length: 576 * 576 }, () => rng.normal());
console.log(`node ${process.version}; threads 1; CPU seconds, median of 3`);
for (const [d, k] of [[2, 64], [2, 256], [4, 256]]) {
  const count = values.length / d;
  const centroids = Float32Array.from({ length: k * d }, () => rng.normal());
  const assign = new Uint8Array(count);
  await nearest.assign(values, count, d, centroids, k, assign); // sessions compiled outside the timing
  const host = await median3(() => assignNearest(values, count, d, centroids, k, assign));
  const ort = await median3(() => nearest.assign(values, count, d, centroids, k, assign));
  const one = await cpuSeconds(() => kmeans(values, count, d, k, { rng: new Rng(2), iterations: 1 }));
  const eleven = await cpuSeconds(() => kmeans(values, count, d, k, { rng: new Rng(2), iterations: 11 }));
  const perIteration = (eleven - one) / 10;
  console.log(
    `d = ${d}, k = ${k}, ${count} points: full assignment host ${host.toFixed(3)} s, ORT Gemm+ArgMin ${ort.toFixed(3)} s (${(host / ort).toFixed(2)}× the host's speed); ` +
      `kmeans: seeding, first full scan and one iteration ${one.toFixed(3)} s, each further iteration ${perIteration.toFixed(4)} s (the ORT pass costs ${(ort / perIteration).toFixed(1)} of them)`,
  );
}
await nearest.release();
