// GPTQ checkpoints (formats.md §1): write a QuantizedModel as a Hugging Face GPTQ folder that
// transformers/optimum, GPTQModel, AutoGPTQ and vLLM load as is, and read such folders back.
//
// Written: config.json with `quantization_config`, the same dictionary in quantize_config.json,
// model.safetensors, and the source's tokenizer files, swapped in atomically (replaceDirAtomic).
// Per quantized linear <mod> (N = out, K = in, G = K / group_size):
//   <mod>.qweight I32 [K·b/32, N]  codes packed along K (pack.ts; 3-bit codes straddle words)
//   <mod>.qzeros  I32 [G, N·b/32]  v1 ("gptq"): z − 1 packed along N
//   <mod>.scales  F16 [G, N]
//   <mod>.g_idx   I32 [K]          k / group_size (desc_act false)
//   <mod>.bias    F16 [N]          only for layers with a bias
// Dense tensors (embeddings, norms, lm_head) stay F32: slimtune evaluates and trains in float32, and
// F32 keeps them bit-exact through a save → load. transformers and vLLM cast them to float16 at load
// anyway (GPTQ kernels take fp16 activations), so config.json says torch_dtype "float16".
//
// Scales are F16 on disk, so a save → load round trip rounds every scale to the nearest float16
// (relative error ≤ 2^-11); codes and zero points are exact. Zero points must lie in [1, 2^b − 1]
// (v1 cannot store 0 safely, §1.5); quantizeRtn guarantees this, and saving refuses a zero of 0.
// The loader also reads "gptq_v2" zero points and sharded folders, and dispatches slimtune-nf4 folders.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../errors.js";
import type { LlamaConfig } from "./hf-config.js";
import { type SafetensorsTensor, writeSafetensors } from "./safetensors.js";
import { float32ToFloat16 } from "./f16.js";
import { loadNf4Folder, nf4QuantMethod, saveNf4Folder } from "./nf4-format.js";
import { llamaParamShapes } from "../models/llama/weights.js";
import { replaceDirAtomic, writeFileAtomic } from "../util/atomic.js";
import {
  FolderTensors,
  checkQuantizedLinears,
  copyTokenizerFiles,
  denseTensors,
  findQuantizationConfig,
  linearShape,
  loadDense,
  quantizeConfigFile,
  quantizedConfigJson,
  readQuantFolderConfig,
  sortForWriting,
  weightsFile,
} from "../quant/folder.js";
import { packAlongAxis, transpose, unpackAlongAxis } from "../quant/pack.js";
import { checkQuantSpec, isQuantBits, quantGroupSizes } from "../quant/spec.js";
import { type QuantBits, type QuantSpec, type QuantizedLinear, type QuantizedModel, quantizableLinears } from "../quant/types.js";

export const gptqQuantMethod = "gptq";

/** The quantization_config dictionary written to config.json and quantize_config.json (formats.md §1.1). */
export function gptqQuantizationConfig(spec: QuantSpec): Record<string, unknown> {
  return {
    quant_method: gptqQuantMethod,
    bits: spec.bits,
    group_size: spec.groupSize === "channel" ? -1 : spec.groupSize,
    desc_act: false,
    sym: spec.symmetric,
    checkpoint_format: "gptq",
    format: "gptq",
    pack_dtype: "int32",
    lm_head: false,
    meta: { quantizer: ["slimtune:0.1.0"], method: "rtn" },
  };
}

function gptqTensors(module: string, q: QuantizedLinear): SafetensorsTensor[] {
  const { outFeatures: n, inFeatures: k, groupSize: gs } = q;
  const bits = q.spec.bits;
  const maxq = (1 << bits) - 1;
  const groups = k / gs;
  if ((k * bits) % 32 !== 0 || (n * bits) % 32 !== 0) {
    throw new SlimtuneError("E_SHAPE", `layer "${module}" is [${n}, ${k}]; GPTQ packs ${bits}-bit codes into 32-bit words, so K and N must be multiples of 32`);
  }
  const zeros = q.zeros;
  if (!zeros) throw new SlimtuneError("E_ARG", `layer "${module}" has no zero points; GPTQ stores RTN layers (quantizeRtn), not NF4 — save NF4 with saveNf4Folder`);
  const stored = new Uint8Array(zeros.length);
  for (let i = 0; i < zeros.length; i++) {
    const z = zeros[i]!;
    if (z < 1 || z > maxq) {
      throw new SlimtuneError(
        "E_ARG",
        `zero point ${z} at row ${Math.floor(i / groups)}, group ${i % groups} of "${module}" cannot be stored in a GPTQ v1 checkpoint, which needs 1 ≤ z ≤ ${maxq} (loaders decode a stored 0 − 1 as ${maxq + 1}); quantize with quantizeRtn's default v1SafeZeros`,
      );
    }
    stored[i] = z - 1;
  }
  const scales = float32ToFloat16(transpose(q.scales, n, groups));
  for (let i = 0; i < scales.length; i++) {
    if ((scales[i]! & 0x7c00) === 0x7c00) {
      throw new SlimtuneError("E_ARG", `scale ${q.scales[(i % n) * groups + Math.floor(i / n)]} of "${module}" does not fit in float16 (largest 65504), which GPTQ stores scales in; the weights are out of any trained model's range — check the model`);
    }
  }
  const gIdx = new Int32Array(k);
  for (let i = 0; i < k; i++) gIdx[i] = Math.floor(i / gs);
  const out: SafetensorsTensor[] = [
    { name: `${module}.qweight`, dtype: "I32", shape: [(k * bits) / 32, n], data: packAlongAxis(transpose(q.codes, n, k), k, n, bits, 0) },
    { name: `${module}.qzeros`, dtype: "I32", shape: [groups, (n * bits) / 32], data: packAlongAxis(transpose(stored, n, groups), groups, n, bits, 1) },
    { name: `${module}.scales`, dtype: "F16", shape: [groups, n], data: scales },
    { name: `${module}.g_idx`, dtype: "I32", shape: [k], data: gIdx },
  ];
  if (q.bias) out.push({ name: `${module}.bias`, dtype: "F16", shape: [n], data: float32ToFloat16(q.bias) });
  return out;
}

/** Writes `qm` (scheme rtn) to `outDir` as a GPTQ v1 folder, replacing it atomically. */
export function saveGptqFolder(outDir: string, qm: QuantizedModel): void {
  checkQuantSpec(qm.spec);
  if (qm.spec.scheme !== "rtn") {
    throw new SlimtuneError("E_ARG", `GPTQ stores integer (rtn) codes, not scheme "${qm.spec.scheme}"; save NF4 models with saveNf4Folder or saveQuantizedFolder`);
  }
  checkQuantizedLinears(qm);
  const tensors = [...denseTensors(qm)];
  for (const [module, q] of qm.linears) tensors.push(...gptqTensors(module, q));
  const quant = gptqQuantizationConfig(qm.spec);
  const config = quantizedConfigJson(qm.config, quant, "float16");
  replaceDirAtomic(outDir, (tmp) => {
    writeFileAtomic(path.join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    writeFileAtomic(path.join(tmp, quantizeConfigFile), `${JSON.stringify(quant, null, 2)}\n`);
    writeSafetensors(path.join(tmp, weightsFile), sortForWriting(tensors), { format: "pt" });
    copyTokenizerFiles(qm.sourceDir, tmp);
  });
}

interface GptqSettings {
  bits: QuantBits;
  groupSize: number; // −1 = channel
  sym: boolean;
  v2: boolean;
}

function gptqSettings(quant: Record<string, unknown>, file: string): GptqSettings {
  const fail = (message: string): never => {
    throw new SlimtuneError("E_CONFIG", `quantization_config: ${message}`, file);
  };
  const method = quant.quant_method ?? gptqQuantMethod;
  if (method !== gptqQuantMethod) fail(`"quant_method" is ${JSON.stringify(method)}; expected "gptq" — slimtune reads GPTQ and slimtune-nf4 checkpoints`);
  const bits = quant.bits;
  if (!isQuantBits(bits)) fail(`"bits" is ${JSON.stringify(bits)}; expected 2, 3, 4 or 8 — other widths are not standard GPTQ`);
  const groupSize = quant.group_size;
  if (typeof groupSize !== "number" || (groupSize !== -1 && !quantGroupSizes.includes(groupSize))) {
    fail(`"group_size" is ${JSON.stringify(groupSize)}; expected -1 (per output channel) or one of ${quantGroupSizes.join(", ")}`);
  }
  if (quant.desc_act !== undefined && quant.desc_act !== false) {
    fail(`"desc_act" is ${JSON.stringify(quant.desc_act)}; slimtune reads only desc_act false (act-order reorders the rows through g_idx) — re-quantize without act-order`);
  }
  if (typeof quant.sym !== "boolean") fail(`"sym" is ${JSON.stringify(quant.sym)}; expected true or false — add "sym" to the config`);
  const format = quant.checkpoint_format ?? quant.format ?? "gptq";
  if (format !== "gptq" && format !== "gptq_v2") {
    fail(`"checkpoint_format" is ${JSON.stringify(format)}; expected "gptq" (v1 zero points) or "gptq_v2"`);
  }
  if (quant.pack_dtype !== undefined && quant.pack_dtype !== "int32") {
    fail(`"pack_dtype" is ${JSON.stringify(quant.pack_dtype)}; slimtune reads int32 words only (what every loader but GPTQModel supports)`);
  }
  if (quant.lm_head !== undefined && quant.lm_head !== false) fail(`"lm_head" is ${JSON.stringify(quant.lm_head)}; a quantized lm_head is not supported — expected false`);
  const dynamic = quant.dynamic;
  if (dynamic !== undefined && dynamic !== null && !(typeof dynamic === "object" && Object.keys(dynamic).length === 0)) {
    fail(`"dynamic" has per-module overrides; mixed-precision GPTQ checkpoints are not supported yet — remove them or re-quantize with one setting`);
  }
  return { bits: bits as QuantBits, groupSize: groupSize as number, sym: quant.sym as boolean, v2: format === "gptq_v2" };
}

function loadGptqLinear(tensors: FolderTensors, config: LlamaConfig, module: string, s: GptqSettings, quantFile: string): QuantizedLinear {
  const [n, k] = linearShape(config, module);
  const gs = s.groupSize === -1 ? k : s.groupSize;
  if (k % gs !== 0) {
    throw new SlimtuneError("E_CONFIG", `quantization_config: "group_size" ${gs} does not divide the ${k} input columns (K) of ${module}; the checkpoint is inconsistent — re-quantize with 32, 64 or -1`, quantFile);
  }
  if ((k * s.bits) % 32 !== 0 || (n * s.bits) % 32 !== 0) {
    throw new SlimtuneError("E_CONFIG", `${module} is [${n}, ${k}]; ${s.bits}-bit GPTQ packing needs K and N to be multiples of 32`, quantFile);
  }
  const groups = k / gs;
  const maxq = (1 << s.bits) - 1;
  const qweight = tensors.bytes(`${module}.qweight`, ["I32"], [(k * s.bits) / 32, n], "packed codes");
  const qzeros = tensors.bytes(`${module}.qzeros`, ["I32"], [groups, (n * s.bits) / 32], "packed zero points");
  const scalesGN = tensors.float32(`${module}.scales`, [groups, n], "scales");
  const gIdx = new Int32Array(tensors.bytes(`${module}.g_idx`, ["I32"], [k], "group of each input row").bytes);
  for (let i = 0; i < k; i++) {
    if (gIdx[i] !== Math.floor(i / gs)) {
      throw new SlimtuneError(
        "E_SAFETENSORS",
        `g_idx of ${module} maps input row ${i} to group ${gIdx[i]}; with desc_act false and group_size ${s.groupSize} it must be ${Math.floor(i / gs)} — the checkpoint uses act-order; re-quantize without it`,
        tensors.fileOf(`${module}.g_idx`),
      );
    }
  }
  const codes = transpose(unpackAlongAxis(new Uint32Array(qweight.bytes), k, n, s.bits, 0), k, n);
  const storedGN = unpackAlongAxis(new Uint32Array(qzeros.bytes), groups, n, s.bits, 1);
  // v1 stores z − 1 mod 2^b; masking after +1 (AutoGPTQ's torch path) recovers a true 0 as 0.
  const zeros = transpose(s.v2 ? storedGN : storedGN.map((v) => (v + 1) & maxq), groups, n);
  if (s.sym) {
    const want = 1 << (s.bits - 1);
    const bad = zeros.findIndex((z) => z !== want);
    if (bad >= 0) {
      throw new SlimtuneError(
        "E_SAFETENSORS",
        `qzeros of ${module} hold zero point ${zeros[bad]} at row ${Math.floor(bad / groups)}, but sym is true, where every zero point is ${want} (Marlin kernels ignore qzeros) — set "sym": false or re-quantize`,
        tensors.fileOf(`${module}.qzeros`),
      );
    }
  }
  const spec: QuantSpec = { scheme: "rtn", bits: s.bits, groupSize: s.groupSize === -1 ? "channel" : s.groupSize, symmetric: s.sym };
  const bias = llamaParamShapes(config).has(`${module}.bias`) ? tensors.float32(`${module}.bias`, [n], "bias") : null;
  return { spec, outFeatures: n, inFeatures: k, groupSize: gs, codes, scales: transpose(scalesGN, groups, n), zeros, bias };
}

/** Reads a GPTQ folder (v1 or v2 zero points, desc_act false) into a QuantizedModel; scales come back as float16 values. */
export function loadGptqFolder(dir: string): QuantizedModel {
  const { config, quant, quantFile } = readQuantFolderConfig(dir);
  const settings = gptqSettings(quant, quantFile);
  const tensors = FolderTensors.open(dir);
  const modules = quantizableLinears(config);
  const linears = new Map<string, QuantizedLinear>();
  for (const module of modules) linears.set(module, loadGptqLinear(tensors, config, module, settings, quantFile));
  const dense = loadDense(tensors, config, new Set(modules));
  const spec: QuantSpec = { scheme: "rtn", bits: settings.bits, groupSize: settings.groupSize === -1 ? "channel" : settings.groupSize, symmetric: settings.sym };
  return { config, spec, linears, dense, sourceDir: dir };
}

/** True when `dir` is a folder whose config.json has a quantization_config, or that has quantize_config.json (any method). */
export function isQuantizedFolder(dir: string): boolean {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return false;
  return findQuantizationConfig(dir) !== null;
}

/** Loads a GPTQ or slimtune-nf4 folder, chosen by quantization_config.quant_method. */
export function loadQuantizedFolder(dir: string): QuantizedModel {
  const { quant, quantFile } = readQuantFolderConfig(dir);
  const method = quant.quant_method ?? gptqQuantMethod;
  if (method === nf4QuantMethod) return loadNf4Folder(dir);
  if (method === gptqQuantMethod) return loadGptqFolder(dir);
  throw new SlimtuneError(
    "E_CONFIG",
    `quantization_config: "quant_method" is ${JSON.stringify(method)}; slimtune reads "${gptqQuantMethod}" and "${nf4QuantMethod}" folders — dequantize it with its own tool, or quantize the float model with slimtune quantize`,
    quantFile,
  );
}

/** Saves with the format of the model's scheme: GPTQ for rtn, slimtune-nf4 for nf4. */
export function saveQuantizedFolder(outDir: string, qm: QuantizedModel): void {
  if (qm.spec.scheme === "nf4") saveNf4Folder(outDir, qm);
  else saveGptqFolder(outDir, qm);
}
