// The floor a decode token cannot go under on ONNX Runtime's CPU kernels: the time of the model's
// weight-bearing nodes alone (every MatMulNBits, Gemm and MatMul with a constant weight, the LM head
// included), taken from the generator's own graph with their real constants and run side by side
// at one row, nothing else in the session. Compared with llama.cpp's whole token (bench/decode.mjs),
// it says whether any cut outside those kernels could reach a target.
//
// Real constants matter: ORT shares identical initializers, so a synthetic chain whose layers repeat
// the same bytes stays in cache and reads 2× too fast (session 29; bench/ort-facts.mjs had that bug).
//
//   npx tsc -p tsconfig.build.json && node bench/decode-matmul-floor.mjs [--model smollm2-135m-shape]
//     [--bits 4|0] [--threads 1] [--rounds 100]

import os from "node:os";
import path from "node:path";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, parseFlags, root, sampleLoad } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models" },
    bits: { type: "int", default: 4, help: "0 = float32, 4 = RTN 4-bit g32 symmetric (as bench/decode.mjs)" },
    threads: { type: "int", default: 1, help: "intra-op threads" },
    rounds: { type: "int", default: 100, help: "timed runs (after 10 untimed)" },
  },
  "node bench/decode-matmul-floor.mjs — the decode graph's weight-bearing nodes alone, with their real constants",
);
ensureBuilt();
const dist = (m) => import(path.join(root, "dist", m));
const { CompiledGraph } = await dist("engine/runtime.js");
const { Graph } = await dist("engine/graph.js");
const { Generator } = await dist("eval/generate.js");
const { generationScoring } = await dist("export/deploy.js");
const { loadBase } = await dist("models/load.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { withQuantizedHead } = await dist("eval/head-tables.js");

const WEIGHTED = new Set(["MatMulNBits", "Gemm", "MatMul"]);
const dir = await cachedDecodeFolder(flags.model, path.join(os.tmpdir(), "slimtune-decode-profile"), flags.bits, { stdio: "inherit" });

// Catch the generator's graph as it is compiled and copy out its weight-bearing nodes.
let nodes = null;
const compile = CompiledGraph.compile;
CompiledGraph.compile = async function (graph, outputs, opts) {
  nodes ??= graph.nodes
    .filter((n) => WEIGHTED.has(n.op.type) && n.inputs.length > 1 && n.inputs.slice(1).every((v) => v.kind === "constant"))
    .map((n) => ({
      op: n.op,
      attrs: { ...n.attrs },
      rank: n.inputs[0].shape.length,
      K: n.inputs[0].shape.at(-1),
      N: n.output.shape.at(-1),
      consts: n.inputs.slice(1).map((v) => ({ data: v.data.slice(), shape: [...v.shape], dtype: v.dtype, name: v.name })),
    }));
  return compile.call(this, graph, outputs, opts);
};
const { base, head } = flags.bits ? withQuantizedHead(loadBase(dir), 4) : { base: loadBase(dir), head: "float" };
const generator = await Generator.create(generationScoring(base), await loadTokenizer(dir), { threads: flags.threads });
await generator.release();
CompiledGraph.compile = compile;

// Every node reads its own input of its width (one row), so none waits on another's output.
const g = new Graph();
const inputs = new Map();
const outs = {};
let weightBytes = 0;
nodes.forEach((n, i) => {
  const key = `${n.rank}:${n.K}`;
  if (!inputs.has(key)) inputs.set(key, g.input(`x_${n.rank}_${n.K}`, [...Array(n.rank - 1).fill(1), n.K]));
  const consts = n.consts.map((c) => {
    weightBytes += c.data.byteLength;
    return g.constant(c.data, c.shape, c.dtype, c.name);
  });
  outs[`y${i}`] = g.add(n.op, [inputs.get(key), ...consts], [...Array(n.rank - 1).fill(1), n.N], "float32", n.attrs);
});
const step = await CompiledGraph.compile(g, outs, { threads: flags.threads });
const feeds = {};
for (const [key, v] of inputs) {
  const K = Number(key.split(":")[1]);
  feeds[v.name] = { data: Float32Array.from({ length: K }, (_, i) => Math.cos(i) * 0.5), shape: v.shape };
}
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
for (let r = 0; r < 10; r++) await step.run(feeds);
const busyBefore = (await sampleLoad(1000)).busy; // the machine's CPU use while this process sleeps
const c0 = cpuMs();
const t0 = performance.now();
for (let r = 0; r < flags.rounds; r++) await step.run(feeds);
const cpu = (cpuMs() - c0) / flags.rounds;
const wall = (performance.now() - t0) / flags.rounds;
await step.release();
const byOp = {};
for (const n of nodes) byOp[n.op.type] = (byOp[n.op.type] ?? 0) + 1;
console.log(`${flags.model} ${flags.bits ? `${flags.bits}-bit` : "float32"} (head: ${head}), ${flags.threads} thread(s): ${nodes.length} weight-bearing nodes ${JSON.stringify(byOp)}, ${(weightBytes / 2 ** 20).toFixed(1)} MiB of constants`);
console.log(`alone, one row each: ${cpu.toFixed(2)} CPU ms per run (${wall.toFixed(2)} ms wall), ${(weightBytes / 1e6 / cpu).toFixed(1)} GB of constants per CPU s; the machine was ${(100 * busyBefore).toFixed(0)} % busy just before`);
