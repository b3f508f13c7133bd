// Model folders the browser benchmarks serve to the page: a config-only shape from shared/models
// with seeded random weights (random-weights.mjs, seed 0) and ref-llama-5m's tokenizer files, so
// the page reads a real tokenizer while the weights have the shape's size.

import fs from "node:fs";
import path from "node:path";
import { root, shared } from "./harness.mjs";
import { randomLlamaWeights } from "./random-weights.mjs";

export const refDir = path.join(shared, "models", "ref-llama-5m");
const dist = (m) => import(path.join(root, "dist", m));

/** The folder for `name` under `scratch`: ref-llama-5m as it is, a shape written with random weights. */
export async function pageModelFolder(name, scratch) {
  if (name === "ref-llama-5m") return refDir;
  const src = path.join(shared, "models", name);
  if (!fs.existsSync(path.join(src, "config.json"))) throw new Error(`unknown model ${name}: no ${src}/config.json`);
  const [{ Rng }, { llamaParamShapes }, { readLlamaConfig }, { writeSafetensors }] = await Promise.all([
    dist("core/rng.js"),
    dist("arch/llama/shapes.js"),
    dist("formats/hf-config.js"),
    dist("formats/safetensors.js"),
  ]);
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(src, "config.json"), path.join(dir, "config.json"));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(refDir, f), path.join(dir, f));
  const tensors = randomLlamaWeights(readLlamaConfig(src), 0, { Rng, llamaParamShapes }).map((w) => ({ ...w, dtype: "F32" }));
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}
