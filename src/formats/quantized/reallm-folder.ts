// slimtune-reallm: our folder layout for ReALLM models, W ≈ L₁·L₂ + Q with Q vector-quantized
// (version 1). No other tool stores this decomposition, so slimtune defines it; slimtune reads it
// back for eval, fine-tuning (`finetune --method reallm` trains L₁, L₂) and export.
//
// Folder: config.json, model.safetensors, tokenizer files. No quantize_config.json (GPTQ tools would
// take it for theirs); transformers rejects the unknown quant_method instead of loading wrong weights.
//
// config.json = the model's Hugging Face config plus
//   "torch_dtype": "float32",
//   "quantization_config": {
//     "quant_method": "slimtune-reallm",      // selects this layout
//     "format_version": 1,
//     "lowrank_dtype": "float16",             // or "float32": storage of every L₁, L₂
//     "scale_bits": 8,                        // block scale codes are U8
//     "budget_bits_per_weight": 3.0,          // what the layers were chosen under (informational)
//     "modules": {                            // every quantized linear, with its own shape choice
//       "model.layers.0.self_attn.q_proj": { "rank": 8, "vq_dim": 2, "code_bits": 4, "block_size": 64, "permuted": false },
//       …
//     }
//   }
// Linear layers absent from "modules" are plain float `<mod>.weight` (+ bias).
//
// model.safetensors, per module <mod> (W is [N, K]; r = rank, d = vq_dim, c = code_bits, bs = block_size):
//   <mod>.lowrank_l1      F16|F32 [N, r]    (absent when r = 0)
//   <mod>.lowrank_l2      F16|F32 [r, K]
//   <mod>.vq_codes        U8 [N, ⌈(K/d)·c/8⌉]  per row, the K/d codes of c bits as a little-endian
//                                           bit stream (code j at bits [c·j, c·j + c) of the row)
//   <mod>.vq_codebook     F16 [2^c, d]      centroids
//   <mod>.vq_scale_codes  U8 [N, K/bs]      block scale s = code / 255 · row_scale
//   <mod>.vq_row_scales   F16 [N]
//   <mod>.vq_perm         U8 [K]            only when permuted: position p of block b holds input
//                                           column b·bs + vq_perm[p] (each block a permutation)
//   <mod>.bias            F32 [N]           only for layers with a bias
//   Ŵ[n, b·bs + vq_perm[p]] = L₁L₂[n, ·] + s(n, b) · codebook[code(n, p / d), p mod d]
// Every other parameter (embeddings, norms, lm_head) is F32 under its transformers name.
// A save → load round trip is exact for codes, codebooks and scales (stored as the quantizer left
// them); L₁, L₂ are rounded to float16 when lowrank_dtype says so.

import path from "node:path";
import { z } from "zod";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError, quote } from "../../core/errors.js";
import { float32ToFloat16 } from "../../core/f16.js";
import { parseFields } from "../../core/json.js";
import type { QuantizedLinear, QuantizedModel, ReallmLinear, ReallmSpec } from "../../quant/types.js";
import { mostCommonSpec } from "../../quant/types.js";
import { FolderTensors, weightsFile } from "../folder-tensors.js";
import { type SafetensorsTensor, writeSafetensors } from "../safetensors.js";
import { copyTokenizerFiles } from "../tokenizer.js";
import { type DenseLoadOptions, checkQuantizedLinears, checkReallmArrays, denseTensors, linearShape, loadDense, quantizedConfigJson, readQuantFolderConfig, sortForWriting } from "./common.js";

export const reallmQuantMethod = "slimtune-reallm";
const formatVersion = 1;
/** Block sizes must fit the U8 permutation offsets. */
export const maxReallmBlockSize = 256;

/** Packs `count` codes of `bits` bits each (a row) into ⌈count·bits/8⌉ bytes, little-endian bit order. */
export function packCodeRow(codes: Uint8Array, bits: number, out: Uint8Array): void {
  out.fill(0);
  for (let j = 0; j < codes.length; j++) {
    const bit = j * bits;
    const v = codes[j]! << (bit & 7);
    out[bit >> 3]! |= v & 0xff;
    if ((bit & 7) + bits > 8) out[(bit >> 3) + 1]! |= v >> 8;
  }
}

export function unpackCodeRow(bytes: Uint8Array, bits: number, count: number, out: Uint8Array): void {
  const mask = (1 << bits) - 1;
  for (let j = 0; j < count; j++) {
    const bit = j * bits;
    let v = bytes[bit >> 3]! >> (bit & 7);
    if ((bit & 7) + bits > 8) v |= bytes[(bit >> 3) + 1]! << (8 - (bit & 7));
    out[j] = v & mask;
  }
}

function moduleEntry(spec: ReallmSpec): Record<string, unknown> {
  return { rank: spec.rank, vq_dim: spec.vqDim, code_bits: spec.codeBits, block_size: spec.blockSize, permuted: spec.permuted };
}

function reallmTensors(module: string, q: ReallmLinear): SafetensorsTensor[] {
  const { outFeatures: n, inFeatures: k, spec } = q;
  const r = spec.rank;
  const out: SafetensorsTensor[] = [];
  if (r > 0) {
    const asStored = (a: Float32Array) => (spec.lowRankDtype === "float16" ? { dtype: "F16" as const, data: float32ToFloat16(a) } : { dtype: "F32" as const, data: a });
    out.push({ name: `${module}.lowrank_l1`, shape: [n, r], ...asStored(q.l1) });
    out.push({ name: `${module}.lowrank_l2`, shape: [r, k], ...asStored(q.l2) });
  }
  const sub = k / spec.vqDim;
  const rowBytes = Math.ceil((sub * spec.codeBits) / 8);
  const packed = new Uint8Array(n * rowBytes);
  for (let row = 0; row < n; row++) packCodeRow(q.vqCodes.subarray(row * sub, (row + 1) * sub), spec.codeBits, packed.subarray(row * rowBytes, (row + 1) * rowBytes));
  out.push({ name: `${module}.vq_codes`, dtype: "U8", shape: [n, rowBytes], data: packed });
  out.push({ name: `${module}.vq_codebook`, dtype: "F16", shape: [1 << spec.codeBits, spec.vqDim], data: float32ToFloat16(q.codebook) });
  out.push({ name: `${module}.vq_scale_codes`, dtype: "U8", shape: [n, k / spec.blockSize], data: q.scaleCodes });
  out.push({ name: `${module}.vq_row_scales`, dtype: "F16", shape: [n], data: float32ToFloat16(q.rowScales) });
  if (q.perm) {
    const offsets = new Uint8Array(k);
    for (let p = 0; p < k; p++) offsets[p] = q.perm[p]! - Math.floor(p / spec.blockSize) * spec.blockSize;
    out.push({ name: `${module}.vq_perm`, dtype: "U8", shape: [k], data: offsets });
  }
  if (q.bias) out.push({ name: `${module}.bias`, dtype: "F32", shape: [n], data: q.bias });
  return out;
}

/** Writes `qm` (every quantized layer a ReALLM layer) to `outDir`, replacing it atomically. */
export function saveReallmFolder(outDir: string, qm: QuantizedModel, opts: { budgetBitsPerWeight?: number } = {}): void {
  const layers = new Map<string, ReallmLinear>();
  for (const [module, q] of qm.linears) {
    if (q.kind !== "reallm") throw new SlimtuneError("E_ARG", `a slimtune-reallm folder holds ReALLM layers; "${module}" is ${q.kind} — save grid models with saveQuantizedFolder`);
    if (q.spec.scaleBits !== 8) throw new SlimtuneError("E_ARG", `"${module}" has ${q.spec.scaleBits}-bit block scales; slimtune-reallm version 1 stores 8-bit scale codes`);
    if (q.spec.blockSize > maxReallmBlockSize) throw new SlimtuneError("E_ARG", `"${module}" has blocks of ${q.spec.blockSize} columns; at most ${maxReallmBlockSize} fit the U8 permutation offsets`);
    layers.set(module, q);
  }
  checkQuantizedLinears(qm);
  const dtypes = new Set([...layers.values()].map((q) => q.spec.lowRankDtype));
  if (dtypes.size > 1) throw new SlimtuneError("E_ARG", "every layer of a slimtune-reallm folder stores L₁, L₂ in the same dtype; re-quantize with one --lowrank-dtype");
  const tensors: SafetensorsTensor[] = [...denseTensors(qm)];
  const modules: Record<string, unknown> = {};
  for (const [module, q] of layers) {
    tensors.push(...reallmTensors(module, q));
    modules[module] = moduleEntry(q.spec);
  }
  const quant: Record<string, unknown> = {
    quant_method: reallmQuantMethod,
    format_version: formatVersion,
    lowrank_dtype: [...dtypes][0] ?? "float16",
    scale_bits: 8,
    ...(opts.budgetBitsPerWeight !== undefined ? { budget_bits_per_weight: opts.budgetBitsPerWeight } : {}),
    modules,
  };
  const config = quantizedConfigJson(qm.config, quant, "float32");
  replaceDirAtomic(outDir, (tmp) => {
    writeFileAtomic(path.join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    writeSafetensors(path.join(tmp, weightsFile), sortForWriting(tensors), { format: "pt" });
    copyTokenizerFiles(qm.sourceDir, tmp);
  });
}

const topShape = {
  quant_method: z.literal(reallmQuantMethod),
  format_version: z.literal(formatVersion),
  lowrank_dtype: z.enum(["float16", "float32"]),
  scale_bits: z.literal(8),
  budget_bits_per_weight: z.number().optional(),
  modules: z.record(z.string(), z.unknown()),
};
const topExpected = {
  quant_method: `"${reallmQuantMethod}"`,
  format_version: `${formatVersion} — this slimtune reads version ${formatVersion}; upgrade slimtune or re-export the folder`,
  lowrank_dtype: '"float16" or "float32"',
  scale_bits: "8 (version 1 stores U8 scale codes)",
  budget_bits_per_weight: "a number",
  modules: "an object mapping each quantized module to its shape",
};
const moduleShape = {
  rank: z.number().int().min(0),
  vq_dim: z.union([z.literal(1), z.literal(2), z.literal(4), z.literal(8)]),
  code_bits: z.number().int().min(1).max(8),
  block_size: z.number().int().min(1).max(maxReallmBlockSize),
  permuted: z.boolean(),
};
const moduleExpected = {
  rank: "an integer ≥ 0",
  vq_dim: "1, 2, 4 or 8",
  code_bits: "an integer from 1 to 8 (a codebook of 2 to 256 centroids)",
  block_size: `an integer from 1 to ${maxReallmBlockSize}`,
  permuted: "true or false",
};

function loadReallmLinear(tensors: FolderTensors, config: LlamaConfig, module: string, spec: ReallmSpec, quantFile: string): ReallmLinear {
  const [n, k] = linearShape(config, module);
  const { rank: r, vqDim: d, codeBits: c, blockSize: bs } = spec;
  const where = `quantization_config: "modules" ${quote(module)}`;
  if (r > Math.min(n, k)) throw new SlimtuneError("E_CONFIG", `${where}: rank ${r} exceeds min(N, K) = ${Math.min(n, k)} of the [${n}, ${k}] layer — the folder is inconsistent; re-quantize`, quantFile);
  if (k % bs !== 0 || bs % d !== 0) {
    throw new SlimtuneError("E_CONFIG", `${where}: block_size ${bs} must divide K = ${k} and be a multiple of vq_dim ${d} — the folder is inconsistent; re-quantize`, quantFile);
  }
  const l1 = r > 0 ? tensors.float32(`${module}.lowrank_l1`, [n, r], "low-rank factor L1") : new Float32Array(0);
  const l2 = r > 0 ? tensors.float32(`${module}.lowrank_l2`, [r, k], "low-rank factor L2") : new Float32Array(0);
  const sub = k / d;
  const rowBytes = Math.ceil((sub * c) / 8);
  const packed = new Uint8Array(tensors.bytes(`${module}.vq_codes`, ["U8"], [n, rowBytes], "packed VQ codes").bytes);
  const vqCodes = new Uint8Array(n * sub);
  for (let row = 0; row < n; row++) unpackCodeRow(packed.subarray(row * rowBytes, (row + 1) * rowBytes), c, sub, vqCodes.subarray(row * sub, (row + 1) * sub));
  const codebook = tensors.float32(`${module}.vq_codebook`, [1 << c, d], "VQ codebook");
  const scaleCodes = new Uint8Array(tensors.bytes(`${module}.vq_scale_codes`, ["U8"], [n, k / bs], "block scale codes").bytes);
  const rowScales = tensors.float32(`${module}.vq_row_scales`, [n], "per-row scale maxima");
  let perm: Int32Array | null = null;
  if (spec.permuted) {
    const offsets = new Uint8Array(tensors.bytes(`${module}.vq_perm`, ["U8"], [k], "column permutation").bytes);
    perm = new Int32Array(k);
    const seen = new Uint8Array(k);
    for (let p = 0; p < k; p++) {
      const col = Math.floor(p / bs) * bs + offsets[p]!;
      if (offsets[p]! >= bs || seen[col]) {
        throw new SlimtuneError("E_SAFETENSORS", `vq_perm of ${module} is not a permutation within blocks of ${bs} (position ${p} → offset ${offsets[p]}); the file is corrupt — re-quantize`, tensors.fileOf(`${module}.vq_perm`));
      }
      seen[col] = 1;
      perm[p] = col;
    }
  }
  const hasBias = linearLayers(config).find((l) => l.path === module)!.bias;
  const bias = hasBias ? tensors.float32(`${module}.bias`, [n], "bias") : null;
  return { kind: "reallm", spec, outFeatures: n, inFeatures: k, l1, l2, vqCodes, codebook, scaleCodes, rowScales, perm, bias };
}

/** Reads a slimtune-reallm folder into a QuantizedModel. */
export function loadReallmFolder(dir: string, opts: DenseLoadOptions = {}): QuantizedModel {
  const { config, quant, quantFile } = readQuantFolderConfig(dir);
  const top = parseFields(quant, topShape, topExpected, { file: quantFile, prefix: "quantization_config: ", fix: "re-export the folder with slimtune quantize --method reallm" });
  const known = new Set(linearLayers(config).map((l) => l.path));
  const tensors = FolderTensors.open(dir);
  const linears = new Map<string, QuantizedLinear>();
  for (const [module, entry] of Object.entries(top.modules)) {
    if (!known.has(module)) throw new SlimtuneError("E_CONFIG", `quantization_config: "modules" names ${quote(module)}, which is not a linear layer of this ${config.modelType} model — the config and folder disagree`, quantFile);
    const m = parseFields(entry, moduleShape, moduleExpected, { file: quantFile, prefix: `quantization_config: "modules" ${quote(module)}: `, fix: "re-export the folder" });
    const spec: ReallmSpec = { scheme: "reallm", rank: m.rank, vqDim: m.vq_dim, codeBits: m.code_bits, blockSize: m.block_size, scaleBits: 8, permuted: m.permuted, lowRankDtype: top.lowrank_dtype };
    const q = loadReallmLinear(tensors, config, module, spec, quantFile);
    checkReallmArrays(q, module);
    linears.set(module, q);
  }
  for (const module of known) {
    if (!linears.has(module) && !tensors.has(`${module}.weight`)) {
      throw new SlimtuneError("E_CONFIG", `${module} is neither in quantization_config "modules" nor a float "${module}.weight" in ${weightsFile} — the folder is incomplete; re-quantize`, quantFile);
    }
  }
  const dense = loadDense(tensors, config, new Set(linears.keys()), opts.skipDense);
  const spec = mostCommonSpec([...linears.values()].map((q) => q.spec as ReallmSpec));
  if (!spec) throw new SlimtuneError("E_CONFIG", 'quantization_config: "modules" is empty; a slimtune-reallm folder quantizes at least one layer', quantFile);
  return { config, spec, linears, dense, sourceDir: dir, method: { name: "reallm", config: top.budget_bits_per_weight !== undefined ? { budget_bits_per_weight: top.budget_bits_per_weight } : {} } };
}
