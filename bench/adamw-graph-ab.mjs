#!/usr/bin/env node
// Issue 21's "AdamW inside a graph", measured before building it: one clipped AdamW update of one
// tensor three ways, interleaved in one process so all see the same load: the loop's JS before
// (global norm, clip the gradient in place, AdamW.step), the JS now (global norm, AdamW.step with
// the clip factor), and the same update as an ONNX graph run by ONNX Runtime (2 intra-op threads,
// outputs written in place into the parameter and moment buffers through pre-allocated fetches).
//
//   npx tsc -p tsconfig.build.json && node bench/adamw-graph-ab.mjs --n 28311552 --repeats 5
//
// --n defaults to the SmolLM2-135M embedding (49,152 × 576). Prints one JSON line: medians, the ratio
// and the largest difference between the two results (in units of lr), with other processes' CPU share.

import path from "node:path";
import * as H from "./lib/harness.mjs";

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const n = flag("n", 49152 * 576);
const repeats = flag("repeats", 5);
const threads = flag("threads", 2);
const dist = path.join(H.root, "dist");
const api = await import(path.join(dist, "index.js"));
const { clipByGlobalNorm, clipScale, globalNorm } = await import(path.join(dist, "train/clip.js"));
const E = api.engine;
const ortModule = await import("onnxruntime-node");
const ort = ortModule.default ?? ortModule;
const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

// The update written as plain ONNX elementwise ops; scalars are inputs so one session serves every step.
const g = new E.Graph();
const [p, grad, m, v] = ["p", "g", "m", "v"].map((name) => g.input(name, [n]));
const s = Object.fromEntries(["scale", "b1", "c1", "b2", "c2", "invBc2Sqrt", "eps", "keep", "stepSize"].map((name) => [name, g.input(name, [1])]));
const gs = E.mul(grad, s.scale);
const m2 = E.add(E.mul(m, s.b1), E.mul(gs, s.c1));
const v2 = E.add(E.mul(v, s.b2), E.mul(E.mul(gs, gs), s.c2));
const denom = E.add(E.mul(E.sqrt(v2), s.invBc2Sqrt), s.eps);
const p2 = E.sub(E.mul(p, s.keep), E.div(E.mul(m2, s.stepSize), denom));
const session = await ort.InferenceSession.create(E.toOnnxBytes(g, { p2, m2, v2 }), { intraOpNumThreads: threads, graphOptimizationLevel: "all", enableMemPattern: false });

const rng = new api.Rng(5);
const fill = (std) => {
  const x = new Float32Array(n);
  rng.fillNormal(x, std);
  return x;
};
const p0 = fill(0.02);
const gradient = fill(1e-3);
const lr = 1e-4, wd = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
// std 1e-3 over millions of values: a norm well above 1, so clipping scales every step.
const scale = clipScale(globalNorm([gradient]), 1);

const jsParams = new Map([["w", p0.slice()]]);
const js = new api.AdamW(jsParams, { weightDecay: wd, decay: () => true });
const unfused = new api.AdamW(new Map([["w", p0.slice()]]), { weightDecay: wd, decay: () => true });
const scratch = new Float32Array(n);
const graphState = { p: p0.slice(), m: new Float32Array(n), v: new Float32Array(n) };
let t = 0;
async function graphStep() {
  t++;
  const scalars = { scale, b1, c1: 1 - b1, b2, c2: 1 - b2, invBc2Sqrt: 1 / Math.sqrt(1 - b2 ** t), eps, keep: 1 - lr * wd, stepSize: lr / (1 - b1 ** t) };
  const feeds = { p: new ort.Tensor("float32", graphState.p, [n]), g: new ort.Tensor("float32", gradient, [n]), m: new ort.Tensor("float32", graphState.m, [n]), v: new ort.Tensor("float32", graphState.v, [n]) };
  for (const [k, x] of Object.entries(scalars)) feeds[k] = new ort.Tensor("float32", Float32Array.of(x), [1]);
  const fetches = { p2: new ort.Tensor("float32", graphState.p, [n]), m2: new ort.Tensor("float32", graphState.m, [n]), v2: new ort.Tensor("float32", graphState.v, [n]) };
  await session.run(feeds, fetches);
}
const times = { jsBefore: [], js: [], graph: [] };
const foreign = [];
for (let r = 0; r < repeats + 1; r++) {
  const c0 = H.cpuStat();
  const u0 = process.resourceUsage();
  scratch.set(gradient);
  let t0 = performance.now();
  clipByGlobalNorm(new Map([["w", scratch]]), 1);
  unfused.step(new Map([["w", scratch]]), lr);
  const beforeMs = performance.now() - t0;
  t0 = performance.now();
  js.step(new Map([["w", gradient]]), lr, clipScale(globalNorm([gradient]), 1));
  const jsMs = performance.now() - t0;
  t0 = performance.now();
  await graphStep();
  const graphMs = performance.now() - t0;
  if (r === 0) continue; // first touch of fresh memory
  times.jsBefore.push(beforeMs);
  times.js.push(jsMs);
  times.graph.push(graphMs);
  const u1 = process.resourceUsage();
  foreign.push(Math.round(100 * H.foreignLoad(c0, H.cpuStat(), (u1.userCPUTime + u1.systemCPUTime - u0.userCPUTime - u0.systemCPUTime) / 1000)));
}
// In units of lr (each step moves a parameter by about lr): float32 intermediates against JS's float64.
const same = unfused.exportState().m.get("w").every((x, i) => x === js.exportState().m.get("w")[i]);
let maxDiff = 0;
const a = jsParams.get("w"), b = graphState.p;
for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
const beforeMs = median(times.jsBefore), jsMs = median(times.js), graphMs = median(times.graph);
console.log(JSON.stringify({
  benchmark: "adamw-graph-ab", n, threads, repeats, steps: t,
  js_clip_then_step_ms_median: Math.round(beforeMs), js_ms_median: Math.round(jsMs), js_over_before_time: Math.round((jsMs / beforeMs) * 100) / 100, graph_ms_median: Math.round(graphMs), graph_over_js_time: Math.round((graphMs / jsMs) * 100) / 100,
  js_clip_then_step_ms_all: times.jsBefore.map(Math.round), js_ms_all: times.js.map(Math.round), graph_ms_all: times.graph.map(Math.round), max_param_diff_in_lr: maxDiff / lr, js_before_and_now_identical_moments: same,
  other_cpu_pct: foreign,
}));
