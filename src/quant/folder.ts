// Pieces shared by the quantized folder formats (GPTQ, slimtune-nf4): config.json with its
// quantization_config, tensor lookup across one file or shards, dense tensors, tokenizer files.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../errors.js";
import { type LlamaConfig, parseLlamaConfig, toHfConfigJson } from "../formats/hf-config.js";
import { SafetensorsFile, type SafetensorsDType, type SafetensorsEntry, type SafetensorsTensor } from "../formats/safetensors.js";
import type { HostParam } from "../models/llama/params.js";
import { llamaParamShapes } from "../models/llama/weights.js";
import { type QuantizedModel, quantizableLinears } from "./types.js";

export const weightsFile = "model.safetensors";
const indexFile = "model.safetensors.index.json";
/** GPTQModel and AutoGPTQ look for this file before config.json (formats.md §1.1). */
export const quantizeConfigFile = "quantize_config.json";
// Same list as saveLlamaFolder copies, plus the files of sentencepiece and GPT-2-style tokenizers.
const tokenizerFiles = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
];

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new SlimtuneError("E_NOT_FOUND", "is missing; a quantized model folder needs config.json — re-export it with slimtune quantize", file);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SlimtuneError("E_CONFIG", `is not valid JSON (${(err as Error).message}); re-export the folder`, file);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface QuantFolderConfig {
  config: LlamaConfig;
  /** The quantization_config dictionary (config.json first, then quantize_config.json). */
  quant: Record<string, unknown>;
  /** The file it came from, for error messages. */
  quantFile: string;
}

/** The quantization_config of a folder, or null when it has none (a float model, or not a model folder). */
export function findQuantizationConfig(dir: string): { quant: Record<string, unknown>; file: string } | null {
  const configFile = path.join(dir, "config.json");
  try {
    const json = JSON.parse(fs.readFileSync(configFile, "utf8")) as unknown;
    if (isObject(json) && isObject(json.quantization_config)) return { quant: json.quantization_config, file: configFile };
  } catch {
    // fall through: the caller reports a missing or broken config.json when it reads the model
  }
  const qFile = path.join(dir, quantizeConfigFile);
  try {
    const json = JSON.parse(fs.readFileSync(qFile, "utf8")) as unknown;
    if (isObject(json)) return { quant: json, file: qFile };
  } catch {
    // not there or not JSON: no quantization config
  }
  return null;
}

/** Reads config.json and the quantization config of a quantized folder. */
export function readQuantFolderConfig(dir: string): QuantFolderConfig {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", `model folder "${dir}" does not exist; pass a folder written by slimtune quantize (config.json, model.safetensors)`);
  }
  const configFile = path.join(dir, "config.json");
  const config = parseLlamaConfig(readJson(configFile), configFile);
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

export function copyTokenizerFiles(sourceDir: string | null, toDir: string): void {
  if (sourceDir === null) return;
  for (const file of tokenizerFiles) {
    const from = path.join(sourceDir, file);
    if (fs.existsSync(from)) fs.copyFileSync(from, path.join(toDir, file));
  }
}

/** Tensors of a folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export class FolderTensors {
  private readonly open = new Map<string, SafetensorsFile>();

  private constructor(
    private readonly dir: string,
    private readonly single: string | null,
    private readonly weightMap: Map<string, string>,
  ) {}

  static open(dir: string): FolderTensors {
    const single = path.join(dir, weightsFile);
    if (fs.existsSync(single)) return new FolderTensors(dir, single, new Map());
    const index = path.join(dir, indexFile);
    if (!fs.existsSync(index)) {
      throw new SlimtuneError("E_NOT_FOUND", `model folder "${dir}" has neither ${weightsFile} nor ${indexFile}; re-export it with slimtune quantize`);
    }
    const json = readJson(index);
    const weightMap = isObject(json) ? json.weight_map : undefined;
    if (!isObject(weightMap)) {
      throw new SlimtuneError("E_SAFETENSORS", `"weight_map" must be an object mapping tensor names to shard files; re-download it`, index);
    }
    const files = new Map<string, string>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
        throw new SlimtuneError("E_SAFETENSORS", `weight_map entry "${name}" is ${JSON.stringify(shard)}; expected a shard file name in the same folder — re-download it`, index);
      }
      files.set(name, path.join(dir, shard));
    }
    return new FolderTensors(dir, null, files);
  }

  /** The file that should hold `name` (for error messages). */
  fileOf(name: string): string {
    return this.single ?? this.weightMap.get(name) ?? path.join(this.dir, indexFile);
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.fileOf(name);
    let st = this.open.get(file);
    if (!st) {
      st = SafetensorsFile.open(file);
      this.open.set(file, st);
    }
    return st;
  }

  has(name: string): boolean {
    if (this.single === null && !this.weightMap.has(name)) return false;
    return this.fileFor(name).entries.has(name);
  }

  /** The entry of `name`, or E_SAFETENSORS naming the tensor and the file (with `why` saying what it is for). */
  entry(name: string, why: string): SafetensorsEntry {
    const entry = this.single === null && !this.weightMap.has(name) ? undefined : this.fileFor(name).entries.get(name);
    if (!entry) {
      const file = this.fileOf(name);
      throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}" in ${path.basename(file)} (${why}); the folder is incomplete or was written for a different config.json — re-export it`, file);
    }
    return entry;
  }

  /** Checks that `name` exists with one of `dtypes` and exactly `shape`; returns its entry. */
  check(name: string, dtypes: readonly SafetensorsDType[], shape: readonly number[], why: string): SafetensorsEntry {
    const entry = this.entry(name, why);
    const file = this.fileOf(name);
    if (!dtypes.includes(entry.dtype)) {
      throw new SlimtuneError("E_SAFETENSORS", `tensor "${name}" has dtype ${entry.dtype}; expected ${dtypes.join(" or ")} (${why}) — re-export the folder`, file);
    }
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new SlimtuneError(
        "E_SHAPE",
        `tensor "${name}" has shape [${entry.shape.join(", ")}]; config.json and quantization_config imply [${shape.join(", ")}] (${why}) — the tensors and config come from different models`,
        file,
      );
    }
    return entry;
  }

  /** Checks dtype and shape, then returns a copy of the raw bytes (aligned, safe to view as any typed array). */
  bytes(name: string, dtypes: readonly SafetensorsDType[], shape: readonly number[], why: string): { dtype: SafetensorsDType; bytes: ArrayBuffer } {
    const { dtype } = this.check(name, dtypes, shape, why);
    return { dtype, bytes: this.fileFor(name).raw(name).slice().buffer };
  }

  /** A float tensor (F32, F16, BF16 or F64) as float32, after the shape check. */
  float32(name: string, shape: readonly number[], why: string): Float32Array {
    this.check(name, ["F32", "F16", "BF16", "F64"], shape, why);
    return this.fileFor(name).float32(name);
  }
}

/** Every non-quantized parameter of `config` (embeddings, norms, lm_head) as float32. */
export function loadDense(tensors: FolderTensors, config: LlamaConfig, quantized: ReadonlySet<string>): Map<string, HostParam> {
  const dense = new Map<string, HostParam>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const module = name.replace(/\.(weight|bias)$/, "");
    if (quantized.has(module)) continue;
    dense.set(name, { data: tensors.float32(name, shape, "a float parameter of the model"), shape });
  }
  return dense;
}

/** Shape [N, K] of a quantizable linear layer according to the config. */
export function linearShape(config: LlamaConfig, module: string): [number, number] {
  const shape = llamaParamShapes(config).get(`${module}.weight`);
  if (!shape || shape.length !== 2) {
    throw new SlimtuneError("E_ARG", `"${module}" is not a linear layer of this ${config.modelType} model; quantize it with quantizeModel`);
  }
  return [shape[0]!, shape[1]!];
}

/** Checks that `qm` holds exactly the model's quantizable layers with the model's shapes and one shared spec. */
export function checkQuantizedLinears(qm: QuantizedModel): void {
  const expected = quantizableLinears(qm.config);
  for (const module of qm.linears.keys()) {
    if (!expected.includes(module)) {
      throw new SlimtuneError("E_ARG", `quantized layer "${module}" is not one of the model's q/k/v/o/gate/up/down projections; build the model with quantizeModel`);
    }
  }
  for (const module of expected) {
    const q = qm.linears.get(module);
    if (!q) throw new SlimtuneError("E_ARG", `quantized layer "${module}" is missing; every q/k/v/o/gate/up/down projection must be quantized (use quantizeModel)`);
    const [n, k] = linearShape(qm.config, module);
    if (q.outFeatures !== n || q.inFeatures !== k) {
      throw new SlimtuneError("E_SHAPE", `quantized layer "${module}" is [${q.outFeatures}, ${q.inFeatures}]; config.json implies [${n}, ${k}]`);
    }
    const s = q.spec;
    if (s.scheme !== qm.spec.scheme || s.bits !== qm.spec.bits || s.symmetric !== qm.spec.symmetric || s.groupSize !== qm.spec.groupSize) {
      throw new SlimtuneError(
        "E_ARG",
        `layer "${module}" was quantized with ${JSON.stringify(s)} but the model with ${JSON.stringify(qm.spec)}; one checkpoint holds one setting — quantize all layers with the same spec`,
      );
    }
    const groups = k / q.groupSize;
    if (!Number.isInteger(groups) || q.codes.length !== n * k || q.scales.length !== n * groups || (q.zeros && q.zeros.length !== n * groups)) {
      throw new SlimtuneError("E_SHAPE", `quantized layer "${module}" has codes/scales/zeros of the wrong length for [${n}, ${k}] with groups of ${q.groupSize}`);
    }
    if (q.bias && q.bias.length !== n) {
      throw new SlimtuneError("E_SHAPE", `bias of "${module}" has ${q.bias.length} values; expected ${n}`);
    }
  }
}
