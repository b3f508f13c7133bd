#!/usr/bin/env node
// How much ReALLM's error moves with the k-means seed alone, so a before/after difference can be
// read against it: quantizes the chosen layers of bench/quantize.mjs's data (written by a run of it,
// same seed and calibration) once per seed with the ReALLM settings of that bench, and prints the
// relative Frobenius error ‖W − Ŵ‖/‖W‖ and ‖(W − Ŵ)X‖/‖WX‖ (through the block's Hessian) per seed,
// and their means over the seeds.
// --root picks the checkout whose dist/ is loaded, so an older commit's code can be run on the same
// data (git archive <commit> | tar -x -C DIR, link node_modules, npx tsc -p tsconfig.build.json).
//
//   node bench/kmeans-seeds.mjs --root /tmp/old --model smollm2-135m-shape --layers k_proj,v_proj --seeds 0,1,2,3
//   (the listed layers run in model order; with all of them, a carried codebook is as in the bench)

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseFlags, root as here } from "./lib/harness.mjs";
import { relativeError } from "./lib/hessian-error.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    root: { type: "string", default: here, help: "checkout whose dist/ runs" },
    model: { type: "string", default: "smollm2-135m-shape", help: "folder of bench/quantize.mjs's data" },
    layers: { type: "list", default: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], help: "layers of the block to report" },
    seeds: { type: "list", default: ["0", "1", "2", "3"], help: "ReALLM seeds" },
    work: { type: "string", default: path.join(os.tmpdir(), "slimtune-quantize-bench"), help: "bench/quantize.mjs's --work" },
  },
  "node bench/kmeans-seeds.mjs [flags]",
);
const load = (p) => import(path.join(flags.root, "dist", p));
const reallm = await load("quant/reallm.js");
const { dequantize } = await load("quant/kinds/index.js");
const { HostGemm } = await load("quant/linalg/host-gemm.js");
const { NearestCentroid } = await load("quant/linalg/kmeans.js");
const dir = path.join(flags.work, flags.model);
const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
const gemm = new HostGemm({ threads: 1 });
const nearest = new NearestCentroid({ threads: 1 });
const readF32 = (file) => {
  const b = fs.readFileSync(path.join(dir, file));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

// The block's layers in model order, as bench/quantize.mjs's ReALLM child runs them: where the
// checkout has them (session 29 on), the VQ shape is screened once per matrix size (chooseReallmShapes)
// and each layer's k-means starts from the previous layer's codebook; older checkouts screen per layer.
const block = manifest.hessians.flatMap((hs) => hs.layers.map((l) => ({ ...l, k: hs.k, hessian: hs.file })));
const modelWide = typeof reallm.chooseReallmShapes === "function";
console.log(`dist from ${flags.root} (${modelWide ? "shapes screened once per matrix size, codebooks carried" : "shapes screened per layer"}); ${flags.model}; seeds ${flags.seeds.join(", ")}; each cell: ‖W − Ŵ‖/‖W‖ / ‖ΔWX‖/‖WX‖`);
const cells = new Map(block.map((l) => [l.name, []]));
const ofH = new Map(block.map((l) => [l.name, []]));
for (const seed of flags.seeds.map(Number)) {
  const opts = { budget: 3, vqDims: [2, 4], blockSize: 64, permute: false, lowRankDtype: "float16", seed, gemm, nearest, codebooks: new Map() };
  const shape = modelWide ? await reallm.chooseReallmShapes(block.map((l, index) => ({ w: readF32(l.file), n: l.n, k: l.k, path: l.name, index })), opts) : [];
  for (const [index, l] of block.entries()) {
    if (!flags.layers.includes(l.name)) continue;
    const w = readF32(l.file);
    const layerOpts = modelWide ? reallm.withShape(opts, shape, l.n, l.k) : opts;
    const { layer, report } = await reallm.quantizeReallmLayer(w, l.n, l.k, layerOpts, l.name, index);
    const e = await relativeError(gemm, w, dequantize(layer), Float64Array.from(readF32(l.hessian)), l.n, l.k);
    ofH.get(l.name).push(e);
    cells.get(l.name).push(`${report.relativeError.toFixed(5)} / ${e.toFixed(5)}`);
  }
}
for (const l of block) {
  if (!flags.layers.includes(l.name)) continue;
  const e = ofH.get(l.name);
  const mean = e.reduce((a, b) => a + b, 0) / e.length;
  const frob = cells.get(l.name).map((c) => Number(c.split(" / ")[0]));
  console.log(`${l.name}: ${cells.get(l.name).join("   ")}   (‖W − Ŵ‖/‖W‖ mean ${(frob.reduce((a, b) => a + b, 0) / frob.length).toFixed(5)}; ‖ΔWX‖/‖WX‖ mean ${mean.toFixed(5)}, range ${Math.min(...e).toFixed(5)}–${Math.max(...e).toFixed(5)})`);
}
await gemm.release();
await nearest.release();
