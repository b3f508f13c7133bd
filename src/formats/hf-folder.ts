// A float LLaMA-family model as a Hugging Face folder: config.json, model.safetensors (or shards),
// tokenizer files. Loads every parameter as float32 and writes them back as F32 (or, asked, F16).

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { type LlamaConfig, isGpt2 } from "../arch/llama/config.js";
import { gpt2StoredNames, isConv1dWeight, transposed } from "../arch/gpt2/names.js";
import { llamaParamShapes } from "../arch/llama/shapes.js";
import { replaceDirAtomic, writeFileAtomic } from "../core/atomic.js";
import { float32ToFloat16 } from "../core/f16.js";
import { indexFile, readWeightMap, weightsFile } from "./folder-tensors.js";
import { toHfConfigJson } from "./hf-config.js";
import { SafetensorsFile, writeSafetensors } from "./safetensors.js";
import { copyTokenizerFiles } from "./tokenizer.js";

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

/** Which file holds each tensor: one model.safetensors, or the shards listed by model.safetensors.index.json. */
function weightFiles(modelDir: string): Map<string, string> | string {
  const single = path.join(modelDir, weightsFile);
  if (fs.existsSync(single)) return single;
  const index = path.join(modelDir, indexFile);
  if (!fs.existsSync(index)) {
    if (!fs.statSync(modelDir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new SlimtuneError("E_NOT_FOUND", `model folder "${modelDir}" does not exist; check the path`);
    }
    throw new SlimtuneError(
      "E_NOT_FOUND",
      `model folder "${modelDir}" has neither ${weightsFile} nor ${indexFile}; slimtune reads safetensors weights — convert .bin/.pth checkpoints with transformers' save_pretrained(safe_serialization=True)`,
    );
  }
  return readWeightMap(modelDir);
}

/** Loads every parameter of `config` as float32, checking presence and shape; extra tensors are ignored. */
export function loadLlamaWeights(modelDir: string, config: LlamaConfig): Map<string, Float32Array> {
  const shapes = llamaParamShapes(config);
  const located = weightFiles(modelDir);
  const byFile = new Map<string, string[]>();
  // A GPT-2 checkpoint may name the body with or without "transformer." (GPT2LMHeadModel or GPT2Model).
  const candidates = (name: string) => (isGpt2(config) ? gpt2StoredNames(name) : [name]);
  for (const name of shapes.keys()) {
    const names = candidates(name);
    const file = typeof located === "string" ? located : names.map((n) => located.get(n)).find((f) => f !== undefined);
    if (file === undefined) throw missingTensor(name, path.join(modelDir, indexFile), config);
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  const weights = new Map<string, Float32Array>();
  // One shard at a time, so only one file buffer is alive alongside the converted tensors.
  for (const [file, names] of byFile) {
    const st = SafetensorsFile.open(file);
    for (const name of names) {
      const stored = candidates(name).find((n) => st.entries.has(n));
      if (stored === undefined) throw missingTensor(name, file, config);
      const entry = st.entries.get(stored)!;
      // GPT-2's Conv1D weights are stored [in, out]; slimtune holds every linear weight [out, in].
      const conv1d = isGpt2(config) && isConv1dWeight(name);
      const expected = conv1d ? [...shapes.get(name)!].reverse() : shapes.get(name)!;
      if (!sameShape(entry.shape, expected)) {
        throw new SlimtuneError(
          "E_SHAPE",
          `tensor "${stored}" has shape ${fmt(entry.shape)}; config.json implies ${fmt(expected)} — the weights and config.json come from different models`,
          file,
        );
      }
      const data = st.float32(stored);
      weights.set(name, conv1d ? transposed(data, expected[0]!, expected[1]!) : data);
    }
  }
  // Preserve the canonical parameter order regardless of shard layout.
  return new Map([...shapes.keys()].map((name) => [name, weights.get(name)!]));
}

function missingTensor(name: string, file: string, config: LlamaConfig): SlimtuneError {
  const hint =
    name === "lm_head.weight" && !config.tieWordEmbeddings
      ? "; if the model shares its embedding matrix with the output layer, set tie_word_embeddings to true in config.json"
      : "; the file does not match config.json (a different model, or a quantized/adapter checkpoint)";
  return new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}" in ${path.basename(file)}${hint}`, file);
}

/**
 * Writes config.json, model.safetensors (F32, or F16 rounded to nearest when `dtype` says so, with
 * torch_dtype to match) and the source's tokenizer files to `outDir`, replacing it atomically.
 */
export function saveLlamaFolder(
  outDir: string,
  config: LlamaConfig,
  weights: Map<string, Float32Array>,
  sourceDir?: string,
  opts: { dtype?: "F32" | "F16" } = {},
): void {
  const half = opts.dtype === "F16";
  const shapes = llamaParamShapes(config);
  for (const name of weights.keys()) {
    if (!shapes.has(name)) {
      throw new SlimtuneError(
        "E_ARG",
        `weight "${name}" is not a parameter of this ${config.modelType} model; pass only the names from llamaParamShapes(config)`,
      );
    }
  }
  const tensors = [...shapes.keys()].sort().map((name) => {
    const shape = shapes.get(name)!;
    const data = weights.get(name);
    if (!data) {
      throw new SlimtuneError("E_ARG", `weight "${name}" is missing; every parameter of the model must be saved`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (data.length !== count) {
      throw new SlimtuneError(
        "E_SHAPE",
        `weight "${name}" has ${data.length} values; shape ${fmt(shape)} needs ${count}`,
      );
    }
    // GPT-2's Conv1D weights go back to the [in, out] its checkpoints store.
    if (isGpt2(config) && isConv1dWeight(name)) {
      const stored = transposed(data, shape[0]!, shape[1]!);
      const storedShape = [shape[1]!, shape[0]!];
      return half ? { name, dtype: "F16" as const, shape: storedShape, data: float32ToFloat16(stored) } : { name, dtype: "F32" as const, shape: storedShape, data: stored };
    }
    return half ? { name, dtype: "F16" as const, shape, data: float32ToFloat16(data) } : { name, dtype: "F32" as const, shape, data };
  });
  const torchDtype = half ? "float16" : "float32";
  const json = toHfConfigJson(config, { torch_dtype: torchDtype });
  // transformers v5 renamed torch_dtype to dtype; keep both consistent when the source used the new key.
  if ("dtype" in config.raw) json.dtype = torchDtype;
  replaceDirAtomic(outDir, (tmpDir) => {
    writeFileAtomic(path.join(tmpDir, "config.json"), `${JSON.stringify(json, null, 2)}\n`);
    writeSafetensors(path.join(tmpDir, weightsFile), tensors, { format: "pt" });
    copyTokenizerFiles(sourceDir ?? null, tmpDir);
  });
}
