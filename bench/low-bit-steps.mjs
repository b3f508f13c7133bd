#!/usr/bin/env node
// How long each linear-algebra step of GPTQ, ReALLM and LQ-LoRA takes, at ref-llama-5m and at the
// SmolLM2-135M shape (random N(0, 0.02²) weights: timings only, quality is meaningless there):
//   - GPTQ over the whole model (block forwards with Gram capture, Hessian preparation, column
//     updates), seconds per layer and in total;
//   - Hessian preparation (dead columns, dampening, chol(H⁻¹)) at K = 576 and 1536;
//   - randomized truncated SVD (rank 64), k-means (d = 2 with 16 centroids, d = 4 with 256), one
//     whole ReALLM matrix at 3 bits per weight and one LQ-LoRA matrix;
//   - a ReALLM layer's forward with Q̂ dequantized once at load against rebuilt by a codebook Gather.
//
//   npx tsc -p tsconfig.build.json && node bench/low-bit-steps.mjs [--models ref-llama-5m,smollm2-135m-shape] [--calib-samples 32]
//
// Prints a markdown table; JSON to bench/results/low-bit-steps.json (--out).

import path from "node:path";
import * as H from "./lib/harness.mjs";
import { randomLlamaWeights } from "./lib/random-weights.mjs";

const SPEC = {
  models: { type: "list", default: ["ref-llama-5m", "smollm2-135m-shape"], help: "models to time" },
  "calib-samples": { type: "int", default: 32, help: "GPTQ calibration windows (the forwards scale linearly with it)" },
  "calib-seq": { type: "int", default: 256, help: "tokens per window" },
  out: { type: "string", default: path.join(H.root, "bench/results/low-bit-steps.json"), help: "JSON results" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, "node bench/low-bit-steps.mjs [--models a,b]");
H.ensureBuilt();
const imp = (p) => import(path.join(H.root, "dist", p));
const [{ LlamaModel }, { readLlamaConfig }, { llamaParamShapes }, { Rng }, { gptqQuantizeModel }, { prepareHessian, defaultGptqSettings, gptqQuantize }, { HostGemm }, { NearestCentroid, kmeans }, { truncatedSvd }, { quantizeReallmLayer }, { lqloraQuantizeModel }, eng, { quantizedLinear }, { calibrationWindows }, { tokenizeFile }, { loadTokenizer }] = await Promise.all([
  imp("models/llama/model.js"),
  imp("formats/hf-config.js"),
  imp("arch/llama/shapes.js"),
  imp("core/rng.js"),
  imp("recipes/gptq.js"),
  imp("quant/gptq.js"),
  imp("quant/linalg/host-gemm.js"),
  imp("quant/linalg/kmeans.js"),
  imp("quant/linalg/svd.js"),
  imp("quant/reallm.js"),
  imp("quant/lqlora.js"),
  imp("engine/index.js"),
  imp("models/parts/quantized-linear.js"),
  imp("data/calibration.js"),
  imp("data/text-file.js"),
  imp("formats/tokenizer.js"),
]);

const MODELS = {
  "ref-llama-5m": { dir: path.join(H.shared, "models/ref-llama-5m"), random: false },
  "smollm2-135m-shape": { dir: path.join(H.shared, "models/smollm2-135m-shape"), random: true },
};

function loadModel(name) {
  const spec = MODELS[name];
  if (!spec.random) return LlamaModel.load(spec.dir);
  const config = readLlamaConfig(spec.dir);
  const weights = new Map(randomLlamaWeights(config, 0, { Rng, llamaParamShapes }).map((w) => [w.name, { data: w.data, shape: w.shape }]));
  return new LlamaModel(config, weights, null);
}

const seconds = async (fn) => {
  const t0 = performance.now();
  const out = await fn();
  return { s: (performance.now() - t0) / 1000, out };
};

const tokens = tokenizeFile(H.wikiValid, await loadTokenizer(MODELS["ref-llama-5m"].dir));
const results = { machine: H.machineInfo(), startLoad: await H.sampleLoad(3000), models: {} };
H.log(`load ${(100 * results.startLoad.busy).toFixed(0)} % busy at start`);
const gemm = new HostGemm();
const nearest = new NearestCentroid();
for (const name of a.models) {
  const model = loadModel(name);
  const c = model.config;
  const r = {};
  H.log(`${name}: GPTQ 4-bit g64 over the whole model, ${a["calib-samples"]} × ${a["calib-seq"]} calibration tokens`);
  const calib = calibrationWindows(tokens, { samples: a["calib-samples"], seq: a["calib-seq"], seed: 0 });
  const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false };
  const g = await seconds(() => gptqQuantizeModel(model, spec, calib, { settings: defaultGptqSettings, trueSequential: true, seq: a["calib-seq"], batch: Math.max(1, Math.floor(2048 / a["calib-seq"])) }));
  const rep = g.out.report;
  const byModule = {};
  for (const l of rep.layers) {
    const m = l.path.split(".").at(-1);
    (byModule[m] ??= []).push(l.hessianSeconds + l.gptqSeconds);
  }
  const sum = (xs) => xs.reduce((x, y) => x + y, 0);
  r.gptq = {
    totalS: g.s,
    forwardS: sum(rep.blocks.map((b) => b.forwardSeconds)),
    hessianS: sum(rep.blocks.map((b) => b.hessianSeconds)),
    columnS: sum(rep.blocks.map((b) => b.gptqSeconds)),
    perBlockS: g.s / c.numLayers,
    perLayerS: Object.fromEntries(Object.entries(byModule).map(([m, xs]) => [m, sum(xs) / xs.length])),
    calibrationTokens: rep.calibrationTokens,
  };
  H.log(`  ${JSON.stringify(r.gptq)}`);
  const w = (p) => model.weights.get(`${p}.weight`);
  const up = w("model.layers.0.mlp.up_proj");
  const down = w("model.layers.0.mlp.down_proj");
  const q = w("model.layers.0.self_attn.q_proj");
  // Hessian preparation at both widths (from a random SPD matrix of the right size).
  r.hessian = {};
  for (const K of [...new Set([c.hiddenSize, c.intermediateSize])]) {
    const x = new Float64Array(2 * K * K);
    const rng = new Rng(1);
    for (let i = 0; i < x.length; i++) x[i] = rng.normal();
    const h = await gemm.mul(x, x, { m: K, k: 2 * K, n: K, transA: true });
    const prep = await seconds(() => prepareHessian(h, K, { ...defaultGptqSettings, actOrder: true }));
    const layer = await seconds(() => gptqQuantize(new Float32Array(c.hiddenSize * K).map(() => rng.normal() * 0.02), c.hiddenSize, K, prep.out, spec, { settings: defaultGptqSettings, gemm }));
    r.hessian[K] = { prepareS: prep.s, columnLoopS: layer.s, n: c.hiddenSize };
  }
  // Randomized SVD rank 64 of the largest matrix.
  const [un, uk] = up.shape;
  r.svd = { shape: [un, uk], rank: 64, s: (await seconds(() => truncatedSvd(Float64Array.from(up.data), un, uk, 64, { gemm, rng: new Rng(2) }))).s };
  // k-means on the up projection's normalised sub-vectors, 10 Lloyd iterations.
  r.kmeans = {};
  for (const [d, bits] of [[2, 4], [4, 8]]) {
    const count = (un * uk) / d;
    let absmax = 0;
    for (const v of up.data) absmax = Math.max(absmax, Math.abs(v));
    const points = Float32Array.from(up.data, (v) => v / absmax);
    const km = await seconds(() => kmeans(points, count, d, 1 << bits, { rng: new Rng(3), iterations: 10, tolerance: 0 }));
    r.kmeans[`d${d}-k${1 << bits}`] = { points: count, iterations: km.out.iterations, s: km.s, perIterationS: km.s / (km.out.iterations + 1) };
  }
  // One whole ReALLM matrix at 3 bits per weight, and one LQ-LoRA matrix.
  const re = await seconds(() => quantizeReallmLayer(down.data, down.shape[0], down.shape[1], { budget: 3, seed: 0, gemm, nearest }, "down_proj"));
  r.reallmLayer = { shape: down.shape, s: re.s, svdS: re.out.report.svdSeconds, kmeansS: re.out.report.kmeansSeconds, spec: re.out.report.spec, candidates: re.out.report.candidates.length };
  const one = { config: { ...c, numLayers: 1 }, weights: model.weights, sourceDir: null };
  const lq = await seconds(() => lqloraQuantizeModel(one, spec, { rank: 64, gemm, seed: 0 }));
  r.lqloraBlock = { rank: 64, s: lq.s, layers: 7 };
  // A ReALLM layer's forward on 2048 tokens: Q̂ constant vs codebook Gather (session creation and run).
  const layer = re.out.layer;
  r.reallmForward = {};
  for (const vq of ["dequantized", "gather"]) {
    const gr = new eng.Graph();
    const M = 2048;
    const y = quantizedLinear(gr.input("x", [M, layer.inFeatures]), layer, "l", { vq });
    const compile = await seconds(() => eng.CompiledGraph.compile(gr, { y }));
    const x = new Float32Array(M * layer.inFeatures).fill(0.01);
    await compile.out.run({ x: { data: x, shape: [M, layer.inFeatures] } });
    const runs = [];
    for (let i = 0; i < 5; i++) runs.push((await seconds(() => compile.out.run({ x: { data: x, shape: [M, layer.inFeatures] } }))).s);
    await compile.out.release();
    r.reallmForward[vq] = { compileS: compile.s, runMs: 1000 * H.median(runs) };
  }
  r.endLoad = await H.sampleLoad(3000);
  results.models[name] = r;
  H.log(`${name}: ${JSON.stringify(r)}`);
}
await gemm.release();
await nearest.release();
H.writeJson(a.out, results);

const f = H.fmt;
const rows = [];
for (const [name, r] of Object.entries(results.models)) {
  rows.push([name, "GPTQ whole model (4-bit g64, true-sequential)", `${f.f(r.gptq.totalS, 1)} s (forwards ${f.f(r.gptq.forwardS, 1)}, Hessians ${f.f(r.gptq.hessianS, 1)}, columns ${f.f(r.gptq.columnS, 1)}); ${f.f(r.gptq.perBlockS, 1)} s per block`]);
  rows.push([name, "GPTQ per layer (Hessian + columns)", Object.entries(r.gptq.perLayerS).map(([m, s]) => `${m} ${f.f(s, 2)}`).join(", ")]);
  for (const [K, h] of Object.entries(r.hessian)) rows.push([name, `Hessian prep K=${K} / column loop ${h.n}×${K}`, `${f.f(h.prepareS, 2)} s / ${f.f(h.columnLoopS, 2)} s`]);
  rows.push([name, `randomized SVD rank 64 of ${r.svd.shape.join("×")}`, `${f.f(r.svd.s, 2)} s`]);
  for (const [k, km] of Object.entries(r.kmeans)) rows.push([name, `k-means ${k} on ${f.int(km.points)} sub-vectors`, `${f.f(km.s, 2)} s for ${km.iterations} iterations (${f.f(1000 * km.perIterationS, 0)} ms each)`]);
  rows.push([name, `ReALLM one matrix ${r.reallmLayer.shape.join("×")} at 3 bits/weight`, `${f.f(r.reallmLayer.s, 1)} s (SVD ${f.f(r.reallmLayer.svdS, 1)}, k-means ${f.f(r.reallmLayer.kmeansS, 1)}; ${r.reallmLayer.candidates} candidates)`]);
  rows.push([name, "LQ-LoRA one block (7 matrices, rank 64, 4-bit g64)", `${f.f(r.lqloraBlock.s, 1)} s`]);
  rows.push([name, "ReALLM layer forward, 2048 tokens: Q̂ at load / Gather", `${f.f(r.reallmForward.dequantized.runMs, 1)} ms / ${f.f(r.reallmForward.gather.runMs, 1)} ms (compile ${f.f(r.reallmForward.dequantized.compileS, 2)} / ${f.f(r.reallmForward.gather.compileS, 2)} s)`]);
}
process.stdout.write(`${H.mdTable(["model", "step", "time"], rows)}\n`);
