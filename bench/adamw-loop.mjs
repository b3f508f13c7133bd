#!/usr/bin/env node
// The optimizer phase of a training step, session 27's code against the library's, interleaved in
// one process so both see the same load: the global norm (one float64 sum, against four independent
// sums) and AdamW's update. "Before" is session 27's code, kept here as the baseline. Session 28
// also tried AdamW's loop as a standalone per-tensor function (bench/results/adamw-loop-s28-
// standalone-candidate.json: 1.11× the time, so not kept); the library's loop is the same as before.
// The AdamW loop is bound by memory traffic plus one sqrt and one division per value: a loop with the
// same loads and stores but neither ran at ~4.3 ns per value against ~7 for AdamW here.
//
//   npx tsc -p tsconfig.build.json && node bench/adamw-loop.mjs --n 50000000 --tensors 4 --repeats 5
//
// Prints one JSON line: medians (ms and ns per value) of each phase, the ratios, whether both
// optimizers ended bit for bit equal, and other processes' CPU share during each repeat.

import path from "node:path";
import * as H from "./lib/harness.mjs";

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const n = flag("n", 50_000_000);
const tensors = flag("tensors", 4);
const repeats = flag("repeats", 5);
const api = await import(path.join(H.root, "dist/index.js"));
const { clipScale, globalNorm } = await import(path.join(H.root, "dist/train/clip.js"));
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

function normBefore(grads) {
  let sum = 0;
  for (const g of grads) {
    const len = g.length;
    for (let i = 0; i < len; i++) {
      const x = g[i];
      sum += x * x;
    }
  }
  return Math.sqrt(sum);
}

/** Session 27's AdamW.step loop (torch semantics, decay on every tensor), over Maps as the class held them. */
class AdamWBefore {
  constructor(params, wd) {
    this.params = params;
    this.wd = wd;
    this.m = new Map([...params].map(([k, p]) => [k, new Float32Array(p.length)]));
    this.v = new Map([...params].map(([k, p]) => [k, new Float32Array(p.length)]));
    this.t = 0;
  }
  step(grads, lr, gradScale) {
    const t = ++this.t;
    const b1 = 0.9, b2 = 0.999, c1 = 1 - b1, c2 = 1 - b2, eps = 1e-8;
    const invBc2Sqrt = 1 / Math.sqrt(1 - Math.pow(b2, t));
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name);
      const v = this.v.get(name);
      const stepSize = lr / (1 - Math.pow(b1, t));
      const keep = 1 - lr * this.wd;
      const len = p.length;
      for (let i = 0; i < len; i++) {
        const gi = Math.fround(g[i] * gradScale);
        const mi = b1 * m[i] + c1 * gi;
        const vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * keep - (stepSize * mi) / (Math.sqrt(vi) * invBc2Sqrt + eps);
      }
    }
  }
}

const rng = new api.Rng(7);
const per = Math.floor(n / tensors);
const names = Array.from({ length: tensors }, (_, i) => `w${i}`);
const fill = (std) => {
  const x = new Float32Array(per);
  rng.fillNormal(x, std);
  return x;
};
const p0 = names.map(() => fill(0.02));
const grads = new Map(names.map((k) => [k, fill(1e-3)]));
const before = new AdamWBefore(new Map(names.map((k, i) => [k, p0[i].slice()])), 0.01);
const afterParams = new Map(names.map((k, i) => [k, p0[i].slice()]));
const after = new api.AdamW(afterParams, { weightDecay: 0.01, decay: () => true });
const times = { normBefore: [], normAfter: [], adamBefore: [], adamAfter: [] };
const foreign = [];
let normDiff = 0;
for (let r = 0; r < repeats + 1; r++) {
  const c0 = H.cpuStat();
  const u0 = process.resourceUsage();
  let t0 = performance.now();
  const nb = normBefore(grads.values());
  const nbMs = performance.now() - t0;
  t0 = performance.now();
  before.step(grads, 1e-4, clipScale(nb, 1));
  const abMs = performance.now() - t0;
  t0 = performance.now();
  const na = globalNorm(grads.values());
  const naMs = performance.now() - t0;
  t0 = performance.now();
  // The same clip factor for both, so their results can be compared bit for bit.
  after.step(grads, 1e-4, clipScale(nb, 1));
  const aaMs = performance.now() - t0;
  normDiff = Math.max(normDiff, Math.abs(na - nb) / nb);
  const u1 = process.resourceUsage();
  if (r === 0) continue; // first touch of the moments' fresh memory
  times.normBefore.push(nbMs);
  times.adamBefore.push(abMs);
  times.normAfter.push(naMs);
  times.adamAfter.push(aaMs);
  foreign.push(Math.round(100 * H.foreignLoad(c0, H.cpuStat(), (u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000)));
}
let identical = true;
for (const [i, k] of names.entries()) {
  const a = afterParams.get(k), b = before.params.get(k);
  for (let j = 0; j < per && identical; j++) if (a[j] !== b[j]) identical = false;
  if (p0[i] === a) identical = false;
}
const med = Object.fromEntries(Object.entries(times).map(([k, xs]) => [k, median(xs)]));
const r2 = (x) => Math.round(x * 100) / 100;
const values = per * tensors;
console.log(JSON.stringify({
  benchmark: "adamw-loop", values, tensors, repeats,
  norm_before_ms: Math.round(med.normBefore), norm_after_ms: Math.round(med.normAfter), norm_after_over_before: r2(med.normAfter / med.normBefore),
  adamw_before_ms: Math.round(med.adamBefore), adamw_after_ms: Math.round(med.adamAfter), adamw_after_over_before: r2(med.adamAfter / med.adamBefore),
  ns_per_value: { norm_before: r2((1e6 * med.normBefore) / values), norm_after: r2((1e6 * med.normAfter) / values), adamw_before: r2((1e6 * med.adamBefore) / values), adamw_after: r2((1e6 * med.adamAfter) / values) },
  params_identical: identical, norm_relative_difference: normDiff,
  all_ms: Object.fromEntries(Object.entries(times).map(([k, xs]) => [k, xs.map(Math.round)])), other_cpu_pct: foreign,
}));
