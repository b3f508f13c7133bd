// A model as a GGUF file llama.cpp loads (formats.md §3): `llama` hyperparameters and tensor names,
// Q/K rows permuted, norms and biases in F32, matrices in the chosen type, and the tokenizer; Llama
// 3's RoPE scaling as the F32 `rope_freqs.weight` llama.cpp's converter writes (rope-freqs.ts).
// A pruned model with per-layer widths is written as `deci` (llama.cpp reads its head and channel
// counts per layer) or padded back to uniform widths with zero rows and columns (`pad`, exact, no
// speed-up). Each quantized layer whose grid is a ggml type's (native.ts: Q4_0, Q4_1, Q8_0) keeps its
// codes. Without --dtype nothing else is allowed: a layer with no type of its own grid is an E_ARG
// naming the options that would change it, and float tensors stay float (F16 when exactly float16).
// With --dtype every other matrix is rounded by ggml's reference quantizer onto the type the dtype
// names: one type for all (q4_k: llama-quantize --pure, with llama.cpp's fallback where a row is not
// whole blocks), llama.cpp's per-tensor mix for a preset (llama-mix.ts: q4_k_m, q3_k_m, q2_k, …), or
// for `layer-bits` the k-quant of each quantized layer's own bit width (a mixed-precision model keeps
// its per-layer bits; float tensors stay float). Each change is recorded (export/changes.ts) so the
// caller can print and measure it.

import { type LayerShape, type LlamaConfig, layerShape } from "../../arch/llama/config.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import { ggufWindowWarning } from "../../arch/llama/window.js";
import type { HostParam } from "../../arch/params.js";
import { f16BitsToF32, f32ToF16Bits } from "../../core/f16.js";
import { SlimtuneError } from "../../core/errors.js";
import { GGML_TYPES, type GgmlType, type GgmlTypeName, decodeRows, encodeRows } from "../../formats/gguf/ggml-types.js";
import { type GgufArch, type GgufLayerWidths, ggufTensorName, isRemoved, llamaHyperparameters, permuteQK, qkHeads, uniformGgufArch } from "../../formats/gguf/llama.js";
import { ROPE_FREQS_TENSOR, llama3RopeFreqFactors } from "../../formats/gguf/rope-freqs.js";
import { ggufTokenizerKeys } from "../../formats/gguf/tokenizer.js";
import { type GgufTensor, type GgufValue, encodeGguf, writeGguf } from "../../formats/gguf/writer.js";
import type { TokenizerSource } from "../../formats/gguf/tokenizer.js";
import { readTokenizerFiles } from "../../formats/tokenizer.js";
import type { LoadedBase } from "../../models/load.js";
import type { QuantizedLinear, RtnLinear } from "../../quant/types.js";
import { type ChangeKind, type TensorChange, groupChanges, layerWords } from "../changes.js";
import { dequantizedModel } from "../merged.js";
import { GPT2_WPE } from "../../arch/gpt2/names.js";
import { GGUF_PRESETS, type GgufPreset, type MixTensor, PRESET_FILE_TYPE, fallbackType, llamaOrder, presetTypes } from "./llama-mix.js";
import { nativeBlocks, nativeGgmlType } from "./native.js";
import { assertGemma3Writable, gemma3Hyperparameters, isShiftedNorm, shiftNorm } from "../../formats/gguf/gemma3.js";

/** One type for every matrix. */
const UNIFORM_DTYPES = ["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q3_k", "q4_k", "q5_k"] as const;
/** Each quantized layer at the ggml type of its own bits (mixed-precision models), floats kept. */
export const LAYER_BITS = "layer-bits";
export const GGUF_DTYPES = [...UNIFORM_DTYPES, ...GGUF_PRESETS, LAYER_BITS] as const;
export type GgufDtype = (typeof GGUF_DTYPES)[number];
export type PrunedLayout = "deci" | "pad";

const TYPE_OF: Record<(typeof UNIFORM_DTYPES)[number], GgmlType> = {
  f32: GGML_TYPES.F32,
  f16: GGML_TYPES.F16,
  q8_0: GGML_TYPES.Q8_0,
  q4_0: GGML_TYPES.Q4_0,
  q4_1: GGML_TYPES.Q4_1,
  q5_0: GGML_TYPES.Q5_0,
  q5_1: GGML_TYPES.Q5_1,
  q3_k: GGML_TYPES.Q3_K,
  q4_k: GGML_TYPES.Q4_K,
  q5_k: GGML_TYPES.Q5_K,
};
const isPreset = (d: GgufDtype): d is GgufPreset => (GGUF_PRESETS as readonly string[]).includes(d);
/** The k-quant of a layer's bit width (`layer-bits`); 8 bits is Q8_0. */
const TYPE_OF_BITS: Record<number, GgmlType> = { 2: GGML_TYPES.Q2_K, 3: GGML_TYPES.Q3_K, 4: GGML_TYPES.Q4_K, 5: GGML_TYPES.Q5_K, 6: GGML_TYPES.Q6_K, 8: GGML_TYPES.Q8_0 };
/** llama.cpp's LLAMA_FTYPE_* of a file whose matrices are mostly of a type. */
const FILE_TYPE: Record<GgmlTypeName, number> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q2_K: 10, Q3_K: 11, Q4_K: 14, Q5_K: 16, Q6_K: 18 };

export interface GgufExportOptions {
  /**
   * The type of every matrix. Absent: each tensor keeps what it is — a quantized layer its own codes
   * in the ggml type of its grid (E_ARG when none is), a float tensor F16 when its values are float16
   * values and F32 otherwise.
   */
  dtype?: GgufDtype;
  /** How per-layer widths are written (default deci). */
  pruned?: PrunedLayout;
  /** general.name (default: the source's base name). */
  name?: string;
  /** Keep what each changed tensor became (TensorChange.decoded), to measure it. */
  keepDecoded?: boolean;
  /**
   * Matrices already in a ggml type's blocks (HF tensor name → blocks, rows in the model's order):
   * written as they are, never re-rounded — GPTQ onto the k-quant grid (`quantize --target`).
   */
  blocks?: ReadonlyMap<string, { type: GgmlType; data: Uint8Array }>;
}

export interface GgufExportReport {
  file: string;
  architecture: GgufArch;
  tensors: number;
  /** Layers whose quantized codes were kept as they are (no second rounding). */
  keptCodes: number;
  /** Tensors of each ggml type in the file. */
  types: Partial<Record<GgmlTypeName, number>>;
  /** What the export did to weights: re-rounding, upcasting, quantizing, float16 rounding of kept layers' d and m. */
  changes: TensorChange[];
  /** Largest |Δw| that float16 storage of kept layers' d (and Q4_1's m) caused; 0 when exact. */
  keptMaxAbsChange: number;
  /** Where llama.cpp will compute this file differently from slimtune and transformers (a sliding window it ignores). */
  warnings: string[];
}

/** Writes `base` (with adapters already merged) as a GGUF model file; the tokenizer comes from `tokenizerSource`. */
export function exportGguf(base: LoadedBase, tokenizerSource: string, outFile: string, opts: GgufExportOptions): GgufExportReport {
  const tokenizer = readTokenizerFiles(tokenizerSource);
  const name = opts.name ?? baseName(tokenizerSource).replace(/\.gguf$/i, "");
  const { metadata, tensors, report } = ggufModel(base, tokenizer, { ...opts, name });
  writeGguf(outFile, metadata, tensors);
  return { file: outFile, ...report };
}

/** The same file as exportGguf, as byte chunks (a web page's download); the tokenizer is given as its two JSON objects. */
export function encodeGgufModel(base: LoadedBase, tokenizer: TokenizerSource, opts: GgufExportOptions & { name: string }): { chunks: Uint8Array[]; report: Omit<GgufExportReport, "file"> } {
  const { metadata, tensors, report } = ggufModel(base, tokenizer, opts);
  return { chunks: encodeGguf(metadata, tensors), report };
}

/** The last part of a path, as path.basename gives it (a trailing slash ignored), without node:path. */
const baseName = (p: string) => p.replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? p;

function ggufModel(base: LoadedBase, tokenizer: TokenizerSource, opts: GgufExportOptions & { name: string }): { metadata: Array<[string, GgufValue]>; tensors: GgufTensor[]; report: Omit<GgufExportReport, "file"> } {
  const config = base.model.config;
  const dtype = opts.dtype;
  const uniformType = dtype && !isPreset(dtype) && dtype !== LAYER_BITS ? TYPE_OF[dtype] : null;
  const uniform = isUniform(config);
  const layout: PrunedLayout | null = uniform ? null : (opts.pruned ?? "deci");
  if (config.qkNorm && config.attentionBias) {
    // transformers' Qwen3Attention puts attention_bias on q, k, v and o; llama.cpp's qwen3 graph does
    // not read them all (it refuses the file: "wrong number of tensors"). No released Qwen3 has them.
    throw new SlimtuneError("E_ARG", "a qwen3 model with attention_bias cannot be written to GGUF: llama.cpp's qwen3 architecture does not read all four attention biases; export it with --format onnx");
  }
  if (config.qkNorm && layout !== null) {
    throw new SlimtuneError("E_ARG", "a pruned qwen3 model (per-layer widths) cannot be written to GGUF yet: llama.cpp's deci architecture has no q/k norms; export it with --format onnx");
  }
  if (config.gemma3) assertGemma3Writable(config);
  if (opts.blocks && layout === "pad") throw new SlimtuneError("E_ARG", "a pruned model's k-quant blocks cannot be padded to uniform widths (padding moves rows and columns); export it with --pruned deci");
  const arch: GgufArch = layout === "deci" ? "deci" : layout === "pad" ? "llama" : uniformGgufArch(config);
  const ropeFreqs = ropeFreqsTensor(config, arch);
  const widths = ggufWidths(config, layout);
  const linears = base.kind === "quantized" ? base.model.linears : new Map<string, QuantizedLinear>();
  const method = base.kind === "quantized" ? base.model.method?.name : undefined;
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  const weights = layout === "pad" ? padWeights(config, float.weights, widths) : float.weights;
  const shapes = layout === "pad" ? llamaParamShapes(paddedConfig(config, widths)) : llamaParamShapes(config);

  // First, where llama.cpp's converter puts it; never quantized (ggml's RoPE reads F32 factors).
  const tensors: GgufTensor[] = ropeFreqs ? [ropeFreqs] : [];
  const changes: TensorChange[] = [];
  const unrepresentable: TensorChange[] = [];
  let keptCodes = 0;
  let keptMaxAbsChange = 0;
  // What the file holds for a tensor, back in the source's row order, to measure the change.
  const decoded = (t: GgmlType, bytes: Uint8Array, count: number, heads: number) => {
    if (!opts.keepDecoded || layout === "pad") return undefined;
    const values = decodeRows(t, bytes, count);
    return heads > 0 ? permuteQK(values, heads, config.headDim, "hf") : values;
  };
  const skipped = (name: string) => arch === "deci" && isRemoved(config, name) && /\.(input_layernorm|self_attn)\./.test(name);
  // llama-quantize quantizes neither norms nor learned position embeddings (tensor_allows_quantization).
  const isMatrix = (name: string, shape: readonly number[]) => shape.length === 2 && !name.endsWith("norm.weight") && name !== GPT2_WPE;
  // A removed MLP of a deci model is written as zero channels of widths.ff (see ggufWidths).
  const zeroMlp = (name: string) => arch === "deci" && name.includes(".mlp.") && layerShape(config, layerOf(name)).intermediateSize === 0;
  const dimsOf = (name: string, ne: number[]) => (zeroMlp(name) ? ne.map((d) => (d === 0 ? widths.ff[layerOf(name)]! : d)) : ne);
  // A preset's types depend on every matrix (how many attn_v, tied embeddings): chosen up front.
  let mix: Map<string, GgmlType> | null = null;
  if (dtype && isPreset(dtype)) {
    const matrices: MixTensor[] = [];
    for (const [name, shape] of shapes) {
      if (skipped(name) || !isMatrix(name, shape)) continue;
      matrices.push({ name: ggufTensorName(name, arch), rowLength: dimsOf(name, [...shape].reverse())[0]! });
    }
    const first = layerShape(config, 0);
    mix = presetTypes(dtype, llamaOrder(matrices), config.numLayers, first.numKvHeads > 0 ? first.numHeads / first.numKvHeads : 1);
  }
  /** The type `dtype` asks for a matrix, null for "keep what it is". */
  const requestedType = (g: string, rowLength: number, q: QuantizedLinear | null): GgmlType | null => {
    if (mix) return mix.get(g)!;
    if (uniformType) return uniformType.blockSize === 256 ? fallbackType(uniformType, rowLength) : uniformType;
    if (dtype === LAYER_BITS && q) return fallbackType(TYPE_OF_BITS[layerBits(q)] ?? GGML_TYPES.Q8_0, rowLength);
    return null;
  };
  for (const [name, shape] of shapes) {
    const g = ggufTensorName(name, arch);
    const ne = [...shape].reverse();
    if (skipped(name)) {
      // deci writes no attention for a layer without heads, except layer 0: llama.cpp takes the head
      // size from layer 0's head count, so that layer gets one all-zero head (it adds exactly 0).
      if (layerOf(name) !== 0) continue;
      const dims = ne.map((d) => (d === 0 ? config.headDim : d));
      const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(name.endsWith("layernorm.weight") ? 1 : 0);
      tensors.push({ name: g, ne: dims, type: GGML_TYPES.F32, data: encodeRows(GGML_TYPES.F32, data) });
      continue;
    }
    const q = linears.get(name.replace(/\.weight$/, ""));
    const heads = qkHeads(config, name);
    const quantizedWeight = q && name.endsWith(".weight") ? q : null;
    const made = opts.blocks?.get(name);
    if (made) {
      tensors.push({ name: g, ne, type: made.type, data: heads > 0 ? permuteBlockRows(made.data, shape[0]!, heads, config.headDim) : made.data });
      keptCodes++;
      continue;
    }
    const dims = dimsOf(name, ne);
    const requested = isMatrix(name, shape) ? requestedType(g, dims[0]!, quantizedWeight) : null;
    if (quantizedWeight) {
      // Padding moves rows and columns, so a padded layer never keeps its blocks.
      const native = layout === "pad" ? null : nativeGgmlType(quantizedWeight);
      if (native && (!requested || requested === native || dtype === LAYER_BITS)) {
        const blocks = nativeBlocks(quantizedWeight as RtnLinear, native, heads, config.headDim);
        tensors.push({ name: g, ne, type: native, data: blocks.data });
        keptCodes++;
        keptMaxAbsChange = Math.max(keptMaxAbsChange, blocks.maxAbsChange);
        if (blocks.maxAbsChange > 0) {
          const change: TensorChange = { tensor: name, from: layerWords(quantizedWeight, method), to: native.name, kind: "codes kept, d/m rounded to f16" };
          const values = decoded(native, blocks.data, shape[0]! * shape[1]!, heads);
          if (values) change.decoded = values;
          changes.push(change);
        }
        continue;
      }
      if (!requested) {
        unrepresentable.push({ tensor: name, from: layerWords(quantizedWeight, method), to: "?", kind: "re-rounded" });
        continue;
      }
    }
    let data = weights.get(name)?.data;
    if (zeroMlp(name)) data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    if (!data) throw new SlimtuneError("E_ARG", `the model has no tensor "${name}"`);
    const exactHalf = isHalfExact(data);
    if (arch === "gemma3" && isShiftedNorm(name)) data = shiftNorm(data);
    if (heads > 0) data = permuteQK(data, layout === "pad" ? qkHeads(paddedConfig(config, widths), name) : heads, config.headDim, "gguf");
    const wanted = requested ?? (exactHalf ? GGML_TYPES.F16 : GGML_TYPES.F32);
    // Legacy 32-blocks that do not divide a row stay F32 (llama.cpp has no fallback for them).
    const t = isMatrix(name, shape) && dims[0]! % wanted.blockSize === 0 ? wanted : GGML_TYPES.F32;
    const bytes = encodeRows(t, data);
    tensors.push({ name: g, ne: dims, type: t, data: bytes });
    const kind = changeKind(t, quantizedWeight !== null, exactHalf);
    if (kind) {
      const change: TensorChange = { tensor: name, from: quantizedWeight ? layerWords(quantizedWeight, method) : "float", to: t.name, kind };
      const values = decoded(t, bytes, data.length, heads);
      if (values) change.decoded = values;
      changes.push(change);
    }
  }
  if (unrepresentable.length > 0) throw noOwnType(unrepresentable, layout === "pad");

  const ids: { bos?: number; eos?: number } = {};
  if (config.bosTokenId !== undefined) ids.bos = config.bosTokenId;
  if (config.eosTokenId !== undefined) ids.eos = config.eosTokenId;
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: arch }],
    ["general.type", { type: "string", value: "model" }],
    ["general.name", { type: "string", value: opts.name }],
    ["general.file_type", { type: "u32", value: dtype && isPreset(dtype) ? PRESET_FILE_TYPE[dtype] : FILE_TYPE[fileType(tensors)] }],
    ...(tensors.some((t) => t.type.blockSize > 1) ? ([["general.quantization_version", { type: "u32", value: 2 }]] as Array<[string, GgufValue]>) : []),
    ...llamaHyperparameters(layout === "pad" ? paddedConfig(config, widths) : config, arch, widths),
    ...(arch === "gemma3" ? gemma3Hyperparameters(config) : []),
    ...ggufTokenizerKeys(tokenizer, config.vocabSize, ids),
  ];
  const types: Partial<Record<GgmlTypeName, number>> = {};
  for (const t of tensors) types[t.type.name] = (types[t.type.name] ?? 0) + 1;
  // A warning, not an error: llama.cpp's own converter writes these models the same way, and they
  // agree with transformers on every sequence that fits in the window.
  const windowWarning = ggufWindowWarning(config);
  return { metadata, tensors, report: { architecture: arch, tensors: tensors.length, keptCodes, types, changes, keptMaxAbsChange, warnings: windowWarning ? [windowWarning] : [] } };
}

/**
 * Llama 3's RoPE scaling as llama.cpp reads it: `rope_freqs.weight`, head_dim/2 F32 factors, which
 * its `llama` and `deci` graphs divide the angles by (null without scaling). llama.cpp's other
 * architectures slimtune writes have no such tensor, so a scaled model among them is refused.
 */
function ropeFreqsTensor(config: LlamaConfig, arch: GgufArch): GgufTensor | null {
  const scaling = config.ropeScaling;
  if (!scaling) return null;
  if (arch !== "llama" && arch !== "deci") {
    throw new SlimtuneError("E_GGUF", `config.json's rope_scaling (rope_type "llama3") cannot be written for llama.cpp's ${arch} architecture, which reads no rope_freqs tensor; only llama and deci models carry Llama 3 RoPE scaling in GGUF. Export it with --format onnx`);
  }
  const factors = llama3RopeFreqFactors(config, scaling);
  return { name: ROPE_FREQS_TENSOR, ne: [factors.length], type: GGML_TYPES.F32, data: encodeRows(GGML_TYPES.F32, factors) };
}

/** What writing a tensor as `t` does to it, or null when its values are kept exactly. */
function changeKind(t: GgmlType, fromQuantized: boolean, halfExact: boolean): ChangeKind | null {
  if (t === GGML_TYPES.F32) return fromQuantized ? "upcast" : null;
  if (t === GGML_TYPES.F16) return fromQuantized ? "upcast" : halfExact ? null : "re-rounded";
  return fromQuantized ? "re-rounded" : "quantized";
}

/** True when every value is a float16 value (a float16 checkpoint read into float32): F16 keeps it exactly. */
function isHalfExact(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (f16BitsToF32(f32ToF16Bits(values[i]!)) !== values[i]) return false;
  return true;
}

/** The file_type llama.cpp shows: the type holding most of the matrices' elements. */
function fileType(tensors: readonly GgufTensor[]): GgmlTypeName {
  const elements = new Map<GgmlTypeName, number>();
  for (const t of tensors) if (t.ne.length === 2) elements.set(t.type.name, (elements.get(t.type.name) ?? 0) + t.ne[0]! * t.ne[1]!);
  let best: GgmlTypeName = "F32";
  for (const [name, n] of elements) if (n > (elements.get(best) ?? 0)) best = name;
  return best;
}

/** E_ARG for layers with no ggml type of their own grid, grouped, naming the options that allow a change. */
function noOwnType(layers: readonly TensorChange[], padded: boolean): SlimtuneError {
  const groups = groupChanges(layers).map((g) => `${g.from} (${g.tensors})`).join("; ");
  const why = padded ? "padding to uniform widths (--pruned pad) moves their rows, so no layer keeps its codes" : "no GGUF type slimtune writes has their grid (Q4_0: 4-bit symmetric g32, Q4_1: 4-bit asymmetric g32, Q8_0: 8-bit symmetric g32)";
  return new SlimtuneError(
    "E_ARG",
    `these quantized layers cannot be written at their own bits: ${groups} — ${why}. Exporting them changes their weights: pass --dtype ${LAYER_BITS} to round each layer onto the ggml k-quant of its own bit width (2-bit → Q2_K, 3 → Q3_K, 4 → Q4_K, 8 → Q8_0; per layer, so a mixed-precision model keeps its sizes), --dtype q4_k_m, q3_k_m, q2_k (llama.cpp's mixes) or one type such as q4_0 / q4_k for every matrix, or --dtype f32 / f16 to write their values as float (larger); the export then prints each change with its KL to the source (given --data)${padded ? ", or export with --pruned deci" : ""}`,
  );
}

/** Whole rows of blocks moved as permuteQK moves rows (GGUF's Q/K order). */
function permuteBlockRows(data: Uint8Array, rows: number, heads: number, headDim: number): Uint8Array {
  const order = permuteQK(Float32Array.from({ length: rows }, (_, n) => n), heads, headDim, "gguf");
  const rowBytes = data.length / rows;
  const out = new Uint8Array(data.length);
  for (let n = 0; n < rows; n++) out.set(data.subarray(order[n]! * rowBytes, (order[n]! + 1) * rowBytes), n * rowBytes);
  return out;
}

/** A quantized layer's bit width; ReALLM's is its code bits per weight, rounded. */
function layerBits(q: QuantizedLinear): number {
  return q.kind === "reallm" ? Math.round(q.spec.codeBits / q.spec.vqDim) : q.spec.bits;
}

const layerOf = (name: string) => Number(/^model\.layers\.(\d+)\./.exec(name)![1]);

function isUniform(config: LlamaConfig): boolean {
  const first = layerShape(config, 0);
  for (let i = 1; i < config.numLayers; i++) {
    const w = layerShape(config, i);
    if (w.numHeads !== first.numHeads || w.numKvHeads !== first.numKvHeads || w.intermediateSize !== first.intermediateSize) return false;
  }
  return first.numHeads > 0 && first.intermediateSize > 0;
}

/**
 * Widths as written. deci: each layer's own, except that a layer without an MLP gets 32 zero
 * channels (llama.cpp's deci graph skips the rest of a layer whose n_ff is 0, attention output
 * included) and layer 0 without heads gets one zero head (llama.cpp reads the head size only when
 * layer 0 has heads). pad: every layer at the widest layer's widths, with the widest GQA group.
 */
function ggufWidths(config: LlamaConfig, layout: PrunedLayout | null): GgufLayerWidths {
  const layers = Array.from({ length: config.numLayers }, (_, i) => layerShape(config, i));
  if (layout !== "pad") {
    const deci = layout === "deci";
    return {
      heads: layers.map((w, i) => (deci && i === 0 && w.numHeads === 0 ? 1 : w.numHeads)),
      kvHeads: layers.map((w, i) => (deci && i === 0 && w.numHeads === 0 ? 1 : w.numHeads > 0 ? w.numKvHeads : 0)),
      ff: layers.map((w) => (deci && w.intermediateSize === 0 ? 32 : w.intermediateSize)),
    };
  }
  const kv = Math.max(...layers.map((w) => w.numKvHeads));
  const rep = Math.max(...layers.map((w) => (w.numKvHeads > 0 ? w.numHeads / w.numKvHeads : 0)));
  const ff = Math.max(32, Math.ceil(Math.max(...layers.map((w) => w.intermediateSize)) / 32) * 32);
  return { heads: layers.map(() => kv * rep), kvHeads: layers.map(() => kv), ff: layers.map(() => ff) };
}

function paddedConfig(config: LlamaConfig, widths: GgufLayerWidths): LlamaConfig {
  const { layerShapes: _drop, ...rest } = config;
  void _drop;
  return { ...rest, numHeads: widths.heads[0]!, numKvHeads: widths.kvHeads[0]!, intermediateSize: widths.ff[0]! };
}

/**
 * Weights of a pruned model spread over uniform widths: layer i's query heads sit in the first
 * rep_i slots of each of its key/value groups, the rest of every row or column is zero, so each
 * padded head or channel adds exactly nothing.
 */
function padWeights(config: LlamaConfig, weights: ReadonlyMap<string, HostParam>, widths: GgufLayerWidths): Map<string, HostParam> {
  const out = new Map(weights);
  const D = config.headDim;
  const C = config.hiddenSize;
  const H = widths.heads[0]!;
  const KV = widths.kvHeads[0]!;
  const F = widths.ff[0]!;
  const rep = H / KV;
  for (let i = 0; i < config.numLayers; i++) {
    const w: LayerShape = layerShape(config, i);
    const p = `model.layers.${i}`;
    const repI = w.numKvHeads > 0 ? w.numHeads / w.numKvHeads : 1;
    // Query head h of the layer (group g = ⌊h / rep_i⌋, j = h mod rep_i) goes to slot g·rep + j.
    const qSlot = (h: number) => Math.floor(h / repI) * rep + (h % repI);
    // Rows of `name` in blocks of `width`: the layer's `units` blocks move to their slots among `n`.
    const rows = (name: string, n: number, slotOf: (u: number) => number, units: number, width: number) => {
      const src = weights.get(name)!;
      const cols = src.shape.length === 2 ? src.shape[1]! : 1;
      const data = new Float32Array(n * width * cols);
      for (let u = 0; u < units; u++) data.set(src.data.subarray(u * width * cols, (u + 1) * width * cols), slotOf(u) * width * cols);
      out.set(name, { data, shape: src.shape.length === 2 ? [n * width, cols] : [n * width] });
    };
    rows(`${p}.self_attn.q_proj.weight`, H, qSlot, w.numHeads, D);
    rows(`${p}.self_attn.k_proj.weight`, KV, (u) => u, w.numKvHeads, D);
    rows(`${p}.self_attn.v_proj.weight`, KV, (u) => u, w.numKvHeads, D);
    for (const bias of ["q", "k", "v"]) {
      const name = `${p}.self_attn.${bias}_proj.bias`;
      if (weights.has(name)) rows(name, bias === "q" ? H : KV, bias === "q" ? qSlot : (u) => u, bias === "q" ? w.numHeads : w.numKvHeads, D);
    }
    // o_proj [C, H·D]: columns of head h move to its slot.
    const o = weights.get(`${p}.self_attn.o_proj.weight`);
    const oPad = new Float32Array(C * H * D);
    if (o) for (let n = 0; n < C; n++) for (let h = 0; h < w.numHeads; h++) for (let d = 0; d < D; d++) oPad[n * H * D + qSlot(h) * D + d] = o.data[n * w.numHeads * D + h * D + d]!;
    out.set(`${p}.self_attn.o_proj.weight`, { data: oPad, shape: [C, H * D] });
    rows(`${p}.mlp.gate_proj.weight`, F, (u) => u, w.intermediateSize, 1);
    rows(`${p}.mlp.up_proj.weight`, F, (u) => u, w.intermediateSize, 1);
    for (const m of ["gate", "up"]) {
      const name = `${p}.mlp.${m}_proj.bias`;
      if (weights.has(name)) rows(name, F, (u) => u, w.intermediateSize, 1);
    }
    const down = weights.get(`${p}.mlp.down_proj.weight`);
    const downPad = new Float32Array(C * F);
    if (down) for (let n = 0; n < C; n++) downPad.set(down.data.subarray(n * w.intermediateSize, (n + 1) * w.intermediateSize), n * F);
    out.set(`${p}.mlp.down_proj.weight`, { data: downPad, shape: [C, F] });
  }
  return out;
}
