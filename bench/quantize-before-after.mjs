// Before/after CPU seconds (the machine is shared, so CPU time rather than wall time) of one ReALLM
// layer (SmolLM2's q_proj, 3 bits per weight) and one GPTQ Hessian preparation (SmolLM2's down_proj
// input, K = 1536), on the data bench/quantize.mjs wrote to /tmp/slimtune-quantize-bench.
//   node bench/quantize-before-after.mjs ROOT hessian|reallm
// ROOT holds a dist/ built from any commit (git archive COMMIT src tsconfig*.json package.json |
// tar -x -C ROOT; link ROOT/node_modules; npx tsc -p ROOT/tsconfig.build.json).
import fs from "node:fs";
const root = process.argv[2];
const which = process.argv[3];
const { quantizeReallmLayer } = await import(`${root}/dist/quant/reallm.js`);
const gptq = await import(`${root}/dist/quant/gptq.js`);
const { HostGemm } = await import(`${root}/dist/quant/linalg/host-gemm.js`);
const { NearestCentroid } = await import(`${root}/dist/quant/linalg/kmeans.js`);
const dir = "/tmp/slimtune-quantize-bench/smollm2-135m-shape";
const rd = (f) => { const b = fs.readFileSync(`${dir}/${f}`); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
const gemm = new HostGemm({ threads: 1 }); const nearest = new NearestCentroid({ threads: 1 });
const cpu = async (fn) => { const c0 = process.cpuUsage(); const t = performance.now(); const out = await fn(); const c = process.cpuUsage(c0); return { cpu: (c.user + c.system) / 1e6, wall: (performance.now() - t) / 1000, out }; };
if (which === "reallm") {
  const r = await cpu(() => quantizeReallmLayer(rd("q_proj.w.f32"), 576, 576, { budget: 3, vqDims: [2, 4], blockSize: 64, permute: false, lowRankDtype: "float16", seed: 0, gemm, nearest }, "q", 0));
  console.log(JSON.stringify({ root, which, cpu: r.cpu, wall: r.wall, error: r.out.report.relativeError, spec: r.out.layer.spec }));
} else {
  const h = Float64Array.from(rd("down_in.h.f32"));
  const r = await cpu(() => (gptq.prepareHessianBlocked ? gptq.prepareHessianBlocked(h, 1536, gptq.defaultGptqSettings, gemm) : gptq.prepareHessian(h, 1536, gptq.defaultGptqSettings)));
  console.log(JSON.stringify({ root, which, cpu: r.cpu, wall: r.wall }));
}
await gemm.release(); await nearest.release();
