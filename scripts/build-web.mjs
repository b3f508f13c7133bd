// Builds slimtune/web: an ESM bundle of src/web/index.ts for browsers (esbuild), the page
// (web/index.html, web/page.js), the page's loss chart (web/loss-chart.js bundled with vega and
// vega-lite, a separate file so slimtune/web itself carries no plotting code) and onnxruntime-web's
// WASM files, into dist/web/ (or argv[2]).
//
// node:* modules: some files the page imports also hold path-level readers and writers (a codec's
// readX(path) beside its parseX(bytes)). In the bundle those imports resolve to a stub that throws
// a clear error if such a path-level function is ever called in a page; the page itself only uses
// the byte-level entry points. The build prints which files still import node:* (the list the
// platform seam should shrink), and onnxruntime-node is never bundled.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const nodeStub = (id) => `
const fail = () => { throw new Error(${JSON.stringify(`${id} is not available in a web page: a path-level reader or writer was called; the page must pass bytes instead`)}); };
const handler = { get: (_t, key) => (key === "__esModule" ? false : key === "default" ? stub : fail), getPrototypeOf: () => prototype };
const prototype = new Proxy({}, { get: (_t, key) => (key === "__esModule" ? false : fail) });
const stub = new Proxy(function () { fail(); }, handler);
module.exports = stub;
`;

/** web/ file bundled (with vega and vega-lite) rather than copied. */
const CHART = "loss-chart.js";

/** Resolves node:* and onnxruntime-node to the throwing stub; records who imported them. */
function nodeStubs(importers) {
  return {
    name: "node-stubs",
    setup(build) {
      build.onResolve({ filter: /^(node:|onnxruntime-node$)/ }, (args) => {
        const from = path.relative(root, args.importer);
        importers.set(from, [...(importers.get(from) ?? []), args.path]);
        return { path: args.path, namespace: "node-stub" };
      });
      build.onLoad({ filter: /.*/, namespace: "node-stub" }, (args) => ({ contents: nodeStub(args.path), loader: "js" }));
    },
  };
}

/** Bundles and copies everything the page needs into `outDir`; returns the files that import node:*. */
export async function buildWeb(outDir = path.join(root, "dist", "web"), { minify = true } = {}) {
  fs.mkdirSync(outDir, { recursive: true });
  const importers = new Map();
  await esbuild.build({
    entryPoints: [path.join(root, "src", "web", "index.ts")],
    outfile: path.join(outDir, "slimtune-web.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify,
    sourcemap: true,
    logLevel: "warning",
    plugins: [nodeStubs(importers)],
    // onnxruntime-web's builds that load their glue (ort-wasm-simd-threaded[.jsep].mjs) from wasmPaths
    // rather than carrying it inline: src/web/ort-web.ts holds two builds, and each one's worker
    // threads must start from its own glue, not from this bundle.
    conditions: ["onnxruntime-web-use-extern-wasm"],
    // onnxruntime-web loads its .wasm (and the threaded worker .mjs) from wasmPaths; they are copied beside the bundle.
    external: ["*.wasm"],
  });
  // The chart: its own bundle under its own name (so the copy below skips the source).
  await esbuild.build({
    entryPoints: [path.join(root, "web", CHART)],
    outfile: path.join(outDir, CHART),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify,
    sourcemap: true,
    logLevel: "warning",
  });
  const ortDist = path.join(root, "node_modules", "onnxruntime-web", "dist");
  for (const f of fs.readdirSync(ortDist)) {
    if (/^ort-wasm-simd-threaded(\.jsep|\.asyncify)?\.(wasm|mjs)$/.test(f)) fs.copyFileSync(path.join(ortDist, f), path.join(outDir, f));
  }
  for (const f of fs.readdirSync(path.join(root, "web"))) if (f !== CHART) fs.copyFileSync(path.join(root, "web", f), path.join(outDir, f));
  return { outDir, nodeImporters: new Map([...importers].filter(([from]) => !from.startsWith("node-stub"))) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { outDir, nodeImporters } = await buildWeb(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  const size = fs.statSync(path.join(outDir, "slimtune-web.js")).size;
  console.log(`slimtune/web → ${path.relative(process.cwd(), outDir)}/slimtune-web.js (${(size / 1024).toFixed(0)} KiB)`);
  const chart = fs.statSync(path.join(outDir, CHART)).size;
  console.log(`the loss chart (vega + vega-lite) → ${CHART} (${(chart / 1024).toFixed(0)} KiB)`);
  console.log(`files the page bundles that still import node:* (stubbed; their path-level functions throw in a page): ${nodeImporters.size}`);
  for (const [from, ids] of [...nodeImporters].sort()) console.log(`  ${from}: ${[...new Set(ids)].join(", ")}`);
}
