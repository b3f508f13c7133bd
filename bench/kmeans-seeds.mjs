#!/usr/bin/env node
// How much ReALLM's error moves with the k-means seed alone, so a before/after difference can be
// read against it: quantizes the chosen layers of bench/quantize.mjs's data (written by a run of it,
// same seed and calibration) once per seed with the ReALLM settings of that bench, and prints the
// relative Frobenius error ‖W − Ŵ‖/‖W‖ and ‖(W − Ŵ)X‖/‖WX‖ (through the block's Hessian) per seed.
// --root picks the checkout whose dist/ is loaded, so an older commit's code can be run on the same
// data (git archive <commit> | tar -x -C DIR, link node_modules, npx tsc -p tsconfig.build.json).
//
//   node bench/kmeans-seeds.mjs --root /tmp/old --model smollm2-135m-shape --layers k_proj,v_proj --seeds 0,1,2,3

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
    layers: { type: "list", default: ["k_proj", "v_proj"], help: "layers of the block" },
    seeds: { type: "list", default: ["0", "1", "2", "3"], help: "ReALLM seeds" },
    work: { type: "string", default: path.join(os.tmpdir(), "slimtune-quantize-bench"), help: "bench/quantize.mjs's --work" },
  },
  "node bench/kmeans-seeds.mjs [flags]",
);
const load = (p) => import(path.join(flags.root, "dist", p));
const { quantizeReallmLayer } = await load("quant/reallm.js");
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

console.log(`dist from ${flags.root}; ${flags.model}; seeds ${flags.seeds.join(", ")}; each cell: ‖W − Ŵ‖/‖W‖ / ‖ΔWX‖/‖WX‖`);
let index = 0;
for (const hs of manifest.hessians) {
  const h = Float64Array.from(readF32(hs.file));
  for (const l of hs.layers) {
    const layerIndex = index++;
    if (!flags.layers.includes(l.name)) continue;
    const w = readF32(l.file);
    const cells = [];
    const ofH = [];
    for (const seed of flags.seeds.map(Number)) {
      const opts = { budget: 3, vqDims: [2, 4], blockSize: 64, permute: false, lowRankDtype: "float16", seed, gemm, nearest };
      const { layer, report } = await quantizeReallmLayer(w, l.n, hs.k, opts, l.name, layerIndex);
      const e = await relativeError(gemm, w, dequantize(layer), h, l.n, hs.k);
      ofH.push(e);
      cells.push(`${report.relativeError.toFixed(5)} / ${e.toFixed(5)}`);
    }
    const mean = ofH.reduce((a, b) => a + b, 0) / ofH.length;
    console.log(`${l.name}: ${cells.join("   ")}   (‖ΔWX‖/‖WX‖ mean ${mean.toFixed(5)}, range ${Math.min(...ofH).toFixed(5)}–${Math.max(...ofH).toFixed(5)})`);
  }
}
await gemm.release();
await nearest.release();
