// slimtune-nf4: our folder layout for NF4-quantized LLaMA-family models (no standard file format
// stores bitsandbytes NF4 weights outside a PyTorch state dict, so we define one; version 1).
//
// Folder: config.json, model.safetensors, tokenizer files. No quantize_config.json (GPTQ tools
// would take it for a GPTQ config). transformers rejects the unknown quant_method instead of
// loading wrong weights.
//
// config.json = the model's Hugging Face config plus
//   "torch_dtype": "float32",
//   "quantization_config": {
//     "quant_method": "slimtune-nf4",   // selects this layout
//     "format_version": 1,
//     "bits": 4,
//     "quant_type": "nf4",              // QLoRA's NormalFloat-4 code book
//     "block_size": 64,                 // input columns per absmax block (divides every K); -1 = all of K
//     "double_quant": false,            // absmax stored as plain float32
//     "nibble_order": "high_first",     // see nf4_codes
//     "codebook": [16 numbers]          // value of each code 0…15 (informational; the reader checks it)
//   }
//
// model.safetensors, per quantized linear <mod> (every q/k/v/o/gate/up/down projection of the
// blocks; W is [N, K] = [out, in]; G = K / block_size):
//   <mod>.nf4_codes  U8  [N, K/2]  two 4-bit codes per byte along K: input column 2j in the HIGH
//                                  nibble, 2j+1 in the LOW nibble — bitsandbytes' order, so a row's
//                                  bytes equal bitsandbytes' packed bytes for that row
//   <mod>.absmax     F32 [N, G]    absmax of each block
//   <mod>.bias       F32 [N]       only for layers with a bias
//   Ŵ[n, k] = absmax[n, floor(k / block_size)] · codebook[code(n, k)]
// Every other parameter (embeddings, norms, lm_head) is F32 under its transformers name.
// A save → load round trip is exact (codes and absmax are stored losslessly).

import path from "node:path";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { z } from "zod";
import { SlimtuneError } from "../../core/errors.js";
import { parseFields } from "../../core/json.js";
import { nf4Codebook } from "../../quant/kinds/nf4.js";
import { checkQuantSpec, quantGroupSizes } from "../../quant/spec.js";
import { type Nf4Linear, type QuantSpec, type QuantizedLinear, type QuantizedModel, gridLayer, gridSpecOf, sameSpec } from "../../quant/types.js";
import { FolderTensors, weightsFile } from "../folder-tensors.js";
import { type SafetensorsTensor, writeSafetensors } from "../safetensors.js";
import { copyTokenizerFiles } from "../tokenizer.js";
import { type DenseLoadOptions, checkQuantizedLinears, denseTensors, linearShape, loadDense, quantizedConfigJson, readQuantFolderConfig, sortForWriting } from "./common.js";

export const nf4QuantMethod = "slimtune-nf4";
const formatVersion = 1;

export function nf4QuantizationConfig(spec: QuantSpec): Record<string, unknown> {
  return {
    quant_method: nf4QuantMethod,
    format_version: formatVersion,
    bits: 4,
    quant_type: "nf4",
    block_size: spec.groupSize === "channel" ? -1 : spec.groupSize,
    double_quant: false,
    nibble_order: "high_first",
    codebook: Array.from(nf4Codebook),
  };
}

/** Two codes per byte along each row, even column in the high nibble. */
export function packNf4Codes(codes: Uint8Array): Uint8Array {
  const out = new Uint8Array(codes.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = ((codes[2 * i]! & 0xf) << 4) | (codes[2 * i + 1]! & 0xf);
  return out;
}

export function unpackNf4Codes(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    out[2 * i] = bytes[i]! >>> 4;
    out[2 * i + 1] = bytes[i]! & 0xf;
  }
  return out;
}

/** Writes `qm` (scheme nf4) to `outDir` in the slimtune-nf4 layout, replacing it atomically. */
export function saveNf4Folder(outDir: string, qm: QuantizedModel): void {
  const spec = gridSpecOf(qm, "a slimtune-nf4 folder");
  checkQuantSpec(spec);
  if (spec.scheme !== "nf4") {
    throw new SlimtuneError("E_ARG", `slimtune-nf4 stores NF4 codes, not scheme "${spec.scheme}"; save integer (rtn) models with saveGptqFolder or saveQuantizedFolder`);
  }
  checkQuantizedLinears(qm);
  // Version 1 records one block size for the whole folder (no per-module overrides).
  for (const [module, q] of qm.linears) {
    if (!sameSpec(q.spec, qm.spec)) {
      throw new SlimtuneError("E_ARG", `layer "${module}" uses ${JSON.stringify(q.spec)} but the model ${JSON.stringify(qm.spec)}; a slimtune-nf4 folder holds one block size — quantize every layer with the same NF4 spec`);
    }
  }
  if (qm.linears.size !== linearLayers(qm.config).length) {
    throw new SlimtuneError("E_ARG", "a slimtune-nf4 folder quantizes every linear layer; keep none in float");
  }
  const tensors: SafetensorsTensor[] = [...denseTensors(qm)];
  for (const [module, layer] of qm.linears) {
    const q = gridLayer(layer, module, "a slimtune-nf4 folder");
    const { outFeatures: n, inFeatures: k, groupSize: bs } = q;
    if (k % 2 !== 0) throw new SlimtuneError("E_SHAPE", `layer "${module}" has K = ${k}; packing two NF4 codes per byte needs an even K`);
    tensors.push({ name: `${module}.nf4_codes`, dtype: "U8", shape: [n, k / 2], data: packNf4Codes(q.codes) });
    tensors.push({ name: `${module}.absmax`, dtype: "F32", shape: [n, k / bs], data: q.scales });
    if (q.bias) tensors.push({ name: `${module}.bias`, dtype: "F32", shape: [n], data: q.bias });
  }
  const config = quantizedConfigJson(qm.config, nf4QuantizationConfig(spec), "float32");
  replaceDirAtomic(outDir, (tmp) => {
    writeFileAtomic(path.join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    writeSafetensors(path.join(tmp, weightsFile), sortForWriting(tensors), { format: "pt" });
    copyTokenizerFiles(qm.sourceDir, tmp);
  });
}

const nf4Shape = {
  quant_method: z.literal(nf4QuantMethod),
  format_version: z.literal(formatVersion),
  bits: z.literal(4),
  quant_type: z.literal("nf4").optional(),
  block_size: z.number().refine((b) => b === -1 || quantGroupSizes.includes(b)),
  double_quant: z.literal(false).optional(),
  nibble_order: z.literal("high_first").optional(),
  codebook: z
    .array(z.number())
    .length(16)
    .refine((book) => book.every((v, i) => Math.abs(v - nf4Codebook[i]!) <= 1e-7))
    .optional(),
};
const nf4Expected = {
  quant_method: `"${nf4QuantMethod}"`,
  format_version: `${formatVersion} (this slimtune reads version ${formatVersion}) — upgrade slimtune or re-export the folder`,
  bits: "4: NF4 is 4-bit",
  quant_type: '"nf4"',
  block_size: `-1 (one block per row) or one of ${quantGroupSizes.join(", ")}`,
  double_quant: "false: version 1 stores absmax as float32",
  nibble_order: '"high_first"',
  codebook: "QLoRA's 16 NF4 values; this folder was written with another code book — re-export it with slimtune quantize --scheme nf4",
};

function nf4BlockSize(quant: Record<string, unknown>, file: string): number {
  return parseFields(quant, nf4Shape, nf4Expected, { file, prefix: "quantization_config: ", fix: "fix the config or re-export the folder" }).block_size;
}

function loadNf4Linear(tensors: FolderTensors, config: LlamaConfig, module: string, blockSize: number, quantFile: string): Nf4Linear {
  const [n, k] = linearShape(config, module);
  const bs = blockSize === -1 ? k : blockSize;
  if (k % bs !== 0 || k % 2 !== 0) {
    throw new SlimtuneError("E_CONFIG", `quantization_config: "block_size" ${blockSize} does not divide the ${k} input columns (K) of ${module} (or K is odd); the folder is inconsistent — re-export it`, quantFile);
  }
  const packed = new Uint8Array(tensors.bytes(`${module}.nf4_codes`, ["U8"], [n, k / 2], "packed NF4 codes").bytes);
  const absmax = tensors.float32(`${module}.absmax`, [n, k / bs], "block absmax");
  const hasBias = linearLayers(config).find((l) => l.path === module)!.bias;
  const bias = hasBias ? tensors.float32(`${module}.bias`, [n], "bias") : null;
  const spec: QuantSpec = { scheme: "nf4", bits: 4, groupSize: blockSize === -1 ? "channel" : blockSize, symmetric: true };
  return { kind: "nf4", spec, outFeatures: n, inFeatures: k, groupSize: bs, codes: unpackNf4Codes(packed), scales: absmax, zeros: null, bias };
}

/** Reads a slimtune-nf4 folder into a QuantizedModel (exactly what was saved). */
export function loadNf4Folder(dir: string, opts: DenseLoadOptions = {}): QuantizedModel {
  const { config, quant, quantFile } = readQuantFolderConfig(dir);
  const blockSize = nf4BlockSize(quant, quantFile);
  const tensors = FolderTensors.open(dir);
  const modules = linearLayers(config).map((l) => l.path);
  const linears = new Map<string, QuantizedLinear>();
  for (const module of modules) linears.set(module, loadNf4Linear(tensors, config, module, blockSize, quantFile));
  const dense = loadDense(tensors, config, new Set(modules), opts.skipDense);
  const spec: QuantSpec = { scheme: "nf4", bits: 4, groupSize: blockSize === -1 ? "channel" : blockSize, symmetric: true };
  return { config, spec, linears, dense, sourceDir: dir };
}
