// The layering of src/ (docs/architecture.md), checked by `npm test`: each folder imports only
// folders listed before it, and no two files import each other (the one allowed circle: ops in
// engine/ops whose VJPs use each other, the price of keeping each VJP beside its op).

/** Bottom to top. A folder may import itself and anything earlier in this list, nothing later. */
const LAYERS = ["core", "engine", "arch", "quant", "formats", "models", "data", "eval", "prune", "methods", "train", "export", "recipes", "web", "report", "cli"];

/** The ops whose VJPs call each other (unbroadcast → reduceSum/reshape, expand's VJP → unbroadcast, …). */
const OPS_CIRCLE = "^src/engine/ops/(elementwise|matmul|nn|reduce|shape)\\.ts$";

const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `${layer}/ may import only ${LAYERS.slice(0, i + 1).join(", ")}`,
  severity: "error",
  from: { path: `^src/${layer}/` },
  to: { path: `^src/(${LAYERS.slice(i + 1).join("|")})/` },
}));

module.exports = {
  forbidden: [
    ...layerRules,
    {
      name: "no-unknown-folder",
      comment: `every folder of src/ is a layer: ${LAYERS.join(", ")} (add a new one to LAYERS and docs/architecture.md)`,
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^src/", pathNot: [`^src/(${LAYERS.join("|")})/`, "^src/index\\.ts$"] },
    },
    {
      name: "no-import-of-the-public-index",
      comment: "src/index.ts re-exports the public API; nothing inside src/ imports it",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^src/index\\.ts$" },
    },
    {
      name: "no-circular",
      comment: "files must not import each other (except the engine/ops circle, allowed by name)",
      severity: "error",
      from: { path: "^src/", pathNot: OPS_CIRCLE },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(dist|node_modules)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
