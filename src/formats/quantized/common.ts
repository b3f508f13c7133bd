// Pieces shared by the quantized folder formats (GPTQ, slimtune-nf4): config.json with its
// quantization_config, dense tensors, checks of a QuantizedModel against its config.

import fs from "node:fs";
import path from "node:path";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { linearLayers, llamaParamShapes } from "../../arch/llama/shapes.js";
import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { isJsonObject, readJsonObject } from "../../core/json.js";
import type { QuantizedModel, ReallmLinear } from "../../quant/types.js";
import type { FolderTensors } from "../folder-tensors.js";
import { parseLlamaConfig, toHfConfigJson } from "../hf-config.js";
import type { SafetensorsDType, SafetensorsTensor } from "../safetensors.js";

/** GPTQModel and AutoGPTQ look for this file before config.json (formats.md §1.1). */
export const quantizeConfigFile = "quantize_config.json";

export interface QuantFolderConfig {
  config: LlamaConfig;
  /** The quantization_config dictionary (config.json first, then quantize_config.json). */
  quant: Record<string, unknown>;
  /** The file it came from, for error messages. */
  quantFile: string;
}

/** The file's JSON object, or undefined for anything else (missing, unreadable, special file, invalid or too deep). */
function tryJson(file: string): unknown {
  try {
    return readJsonObject(file, { missingFix: "" });
  } catch {
    return undefined;
  }
}

/** The quantization_config of a folder, or null when it has none (a float model, or not a model folder). */
export function findQuantizationConfig(dir: string): { quant: Record<string, unknown>; file: string } | null {
  // A missing or broken config.json is reported by whoever reads the model; here it only means "not quantized".
  const configFile = path.join(dir, "config.json");
  const json = tryJson(configFile);
  if (isJsonObject(json) && isJsonObject(json.quantization_config)) return { quant: json.quantization_config, file: configFile };
  const qFile = path.join(dir, quantizeConfigFile);
  const quant = tryJson(qFile);
  return isJsonObject(quant) ? { quant, file: qFile } : null;
}

/** True when `dir` is a folder whose config.json has a quantization_config, or that has quantize_config.json (any method). */
export function isQuantizedFolder(dir: string): boolean {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return false;
  return findQuantizationConfig(dir) !== null;
}

/** Reads config.json and the quantization config of a quantized folder. */
export function readQuantFolderConfig(dir: string): QuantFolderConfig {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", `model folder "${dir}" does not exist; pass a folder written by slimtune quantize (config.json, model.safetensors)`);
  }
  const configFile = path.join(dir, "config.json");
  const json = readJsonObject(configFile, {
    missingFix: "a quantized model folder needs config.json — re-export it with slimtune quantize",
    invalidFix: "re-export the folder",
  });
  const config = parseLlamaConfig(json, configFile);
  const found = findQuantizationConfig(dir);
  if (!found) {
    throw new SlimtuneError(
      "E_CONFIG",
      `has no "quantization_config" (and the folder has no ${quantizeConfigFile}); this is a float model — load it with LlamaModel.load, or quantize it with slimtune quantize`,
      configFile,
    );
  }
  // The in-memory config describes the model, not its storage: saving it as a float model later
  // must not carry the quantization_config along (the quantized savers add theirs back).
  delete config.raw.quantization_config;
  return { config, quant: found.quant, quantFile: found.file };
}

/** config.json for a quantized folder: the model's config with `quantization_config` and the dtype set. */
export function quantizedConfigJson(config: LlamaConfig, quant: Record<string, unknown>, dtype: string): Record<string, unknown> {
  const json = toHfConfigJson(config, { torch_dtype: dtype, quantization_config: quant });
  // transformers v5 renamed torch_dtype to dtype; keep both consistent when the source used the new key.
  if ("dtype" in config.raw) json.dtype = dtype;
  return json;
}

/** The dense (float) tensors of `qm` as F32 safetensors entries, checked against the config's shapes. */
export function denseTensors(qm: QuantizedModel): SafetensorsTensor[] {
  const shapes = llamaParamShapes(qm.config);
  const out: SafetensorsTensor[] = [];
  for (const [name, p] of qm.dense) {
    const shape = shapes.get(name);
    if (!shape) {
      throw new SlimtuneError("E_ARG", `dense tensor "${name}" is not a parameter of this ${qm.config.modelType} model; pass only names from llamaParamShapes(config)`);
    }
    const count = shape.reduce((a, b) => a * b, 1);
    if (p.data.length !== count) {
      throw new SlimtuneError("E_SHAPE", `dense tensor "${name}" has ${p.data.length} values; shape [${shape.join(", ")}] needs ${count}`);
    }
    out.push({ name, dtype: "F32", shape, data: p.data });
  }
  return out;
}

/** Widest dtype first, then by name (formats.md §5.4): every tensor stays aligned to its element size. */
export function sortForWriting(tensors: SafetensorsTensor[]): SafetensorsTensor[] {
  const width: Partial<Record<SafetensorsDType, number>> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2 };
  return [...tensors].sort((a, b) => (width[b.dtype] ?? 1) - (width[a.dtype] ?? 1) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What a quantized folder's loader leaves out of the model. */
export interface DenseLoadOptions {
  /**
   * Dense tensors not to read as float32: the embedding and LM head when the caller builds their
   * tables straight from the file (streamed-tables.ts), so their float copy never exists.
   */
  skipDense?: ReadonlySet<string>;
}

/** Every parameter of `config` not in a quantized module (embeddings, norms, lm_head, float linears) as float32, but those `skip` names. */
export function loadDense(tensors: FolderTensors, config: LlamaConfig, quantized: ReadonlySet<string>, skip: ReadonlySet<string> = new Set()): Map<string, HostParam> {
  const dense = new Map<string, HostParam>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const module = name.replace(/\.(weight|bias)$/, "");
    if (quantized.has(module) || skip.has(name)) continue;
    dense.set(name, { data: tensors.float32(name, shape, "a float parameter of the model"), shape });
  }
  return dense;
}

/** Shape [N, K] of a linear layer according to the config. */
export function linearShape(config: LlamaConfig, module: string): [number, number] {
  const layer = linearLayers(config).find((l) => l.path === module);
  if (!layer) {
    throw new SlimtuneError("E_ARG", `"${module}" is not a linear layer of this ${config.modelType} model; quantize it with quantizeModel`);
  }
  return [layer.outFeatures, layer.inFeatures];
}

/**
 * Checks that every linear layer of the model is either quantized with the config's shape or kept
 * in float among the dense tensors, and that each quantized layer's arrays fit its own spec.
 */
export function checkQuantizedLinears(qm: QuantizedModel): void {
  const expected = linearLayers(qm.config).map((l) => l.path);
  for (const module of qm.linears.keys()) {
    if (!expected.includes(module)) {
      throw new SlimtuneError("E_ARG", `quantized layer "${module}" is not one of the model's q/k/v/o/gate/up/down projections; build the model with quantizeModel`);
    }
  }
  for (const module of expected) {
    const q = qm.linears.get(module);
    if (!q) {
      if (qm.dense.has(`${module}.weight`)) continue;
      throw new SlimtuneError("E_ARG", `quantized layer "${module}" is missing; every q/k/v/o/gate/up/down projection must be quantized or kept in float (use quantizeModel)`);
    }
    const [n, k] = linearShape(qm.config, module);
    if (q.outFeatures !== n || q.inFeatures !== k) {
      throw new SlimtuneError("E_SHAPE", `quantized layer "${module}" is [${q.outFeatures}, ${q.inFeatures}]; config.json implies [${n}, ${k}]`);
    }
    if (q.kind !== q.spec.scheme) {
      throw new SlimtuneError("E_ARG", `layer "${module}" holds ${q.kind} codes but its spec says scheme ${q.spec.scheme}; build layers with quantizeLinear`);
    }
    if (q.kind === "reallm") {
      checkReallmArrays(q, module);
      if (q.bias && q.bias.length !== n) throw new SlimtuneError("E_SHAPE", `bias of "${module}" has ${q.bias.length} values; expected ${n}`);
      continue;
    }
    const groups = k / q.groupSize;
    if (!Number.isInteger(groups) || q.codes.length !== n * k || q.scales.length !== n * groups || (q.zeros && q.zeros.length !== n * groups)) {
      throw new SlimtuneError("E_SHAPE", `quantized layer "${module}" has codes/scales/zeros of the wrong length for [${n}, ${k}] with groups of ${q.groupSize}`);
    }
    if (q.kind === "rtn" && q.groupIndex && q.groupIndex.length !== k) {
      throw new SlimtuneError("E_SHAPE", `quantized layer "${module}" has a g_idx of ${q.groupIndex.length} entries; it needs one per input column (${k})`);
    }
    if (q.bias && q.bias.length !== n) {
      throw new SlimtuneError("E_SHAPE", `bias of "${module}" has ${q.bias.length} values; expected ${n}`);
    }
  }
}

/** The arrays of a ReALLM layer against its spec and shape. */
export function checkReallmArrays(q: ReallmLinear, module: string): void {
  const { outFeatures: n, inFeatures: k, spec } = q;
  const fail = (what: string) => {
    throw new SlimtuneError("E_SHAPE", `ReALLM layer "${module}" [${n}, ${k}]: ${what}`);
  };
  if (k % spec.blockSize !== 0 || spec.blockSize % spec.vqDim !== 0) fail(`block size ${spec.blockSize} must divide K and be a multiple of the sub-vector length ${spec.vqDim}`);
  if (q.l1.length !== n * spec.rank || q.l2.length !== spec.rank * k) fail(`L1/L2 hold ${q.l1.length}/${q.l2.length} values; rank ${spec.rank} needs ${n * spec.rank}/${spec.rank * k}`);
  if (q.vqCodes.length !== (n * k) / spec.vqDim) fail(`${q.vqCodes.length} codes; ${(n * k) / spec.vqDim} sub-vectors`);
  if (q.codebook.length !== (1 << spec.codeBits) * spec.vqDim) fail(`codebook of ${q.codebook.length} values; 2^${spec.codeBits} × ${spec.vqDim} expected`);
  if (q.scaleCodes.length !== (n * k) / spec.blockSize || q.rowScales.length !== n) fail("scale codes or row scales of the wrong length");
  if (q.perm && q.perm.length !== k) fail(`a permutation of ${q.perm.length} columns`);
}
