// A model as a GGUF file llama.cpp loads (formats.md §3): `llama` hyperparameters and tensor names,
// Q/K rows permuted, norms and biases in F32, matrices in the chosen type, and the tokenizer.
// A pruned model with per-layer widths is written as `deci` (llama.cpp reads its head and channel
// counts per layer) or padded back to uniform widths with zero rows and columns (`pad`, exact, no
// speed-up). A quantized model whose integer grid is already Q4_0's or Q8_0's (symmetric, groups of
// 32) keeps its codes; any other is dequantized and quantized again by ggml's reference rounding.

import path from "node:path";
import { type LayerShape, type LlamaConfig, layerShape } from "../../arch/llama/config.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import type { HostParam } from "../../arch/params.js";
import { f32ToF16Bits } from "../../core/f16.js";
import { SlimtuneError } from "../../core/errors.js";
import { GGML_TYPES, type GgmlType, encodeRows } from "../../formats/gguf/ggml-types.js";
import { type GgufArch, type GgufLayerWidths, ggufTensorName, isRemoved, llamaHyperparameters, permuteQK, qkHeads, uniformGgufArch } from "../../formats/gguf/llama.js";
import { ggufTokenizerKeys } from "../../formats/gguf/tokenizer.js";
import { type GgufTensor, type GgufValue, writeGguf } from "../../formats/gguf/writer.js";
import { readTokenizerFiles } from "../../formats/tokenizer.js";
import type { LoadedBase } from "../../models/load.js";
import type { QuantizedLinear } from "../../quant/types.js";
import { dequantizedModel } from "../deploy.js";

export const GGUF_DTYPES = ["f32", "f16", "q8_0", "q4_0"] as const;
export type GgufDtype = (typeof GGUF_DTYPES)[number];
export type PrunedLayout = "deci" | "pad";

const TYPE_OF: Record<GgufDtype, GgmlType> = { f32: GGML_TYPES.F32, f16: GGML_TYPES.F16, q8_0: GGML_TYPES.Q8_0, q4_0: GGML_TYPES.Q4_0 };
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };

export interface GgufExportOptions {
  dtype: GgufDtype;
  /** How per-layer widths are written (default deci). */
  pruned?: PrunedLayout;
  /** general.name (default: the source's base name). */
  name?: string;
}

export interface GgufExportReport {
  file: string;
  architecture: GgufArch;
  tensors: number;
  /** Layers whose quantized codes were kept as they are (no second rounding). */
  keptCodes: number;
}

/** Writes `base` (with adapters already merged) as a GGUF model file; the tokenizer comes from `tokenizerSource`. */
export function exportGguf(base: LoadedBase, tokenizerSource: string, outFile: string, opts: GgufExportOptions): GgufExportReport {
  const config = base.model.config;
  if (config.ropeScaling) {
    throw new SlimtuneError("E_ARG", "the model uses Llama 3 RoPE scaling, which slimtune does not write to GGUF yet (llama.cpp needs a rope_freqs tensor); export it with --format onnx");
  }
  const type = TYPE_OF[opts.dtype];
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
  const arch: GgufArch = layout === "deci" ? "deci" : layout === "pad" ? "llama" : uniformGgufArch(config);
  const widths = ggufWidths(config, layout);
  // Codes kept only where rows stay where they are (no padding) and the grid is ggml's.
  const direct = base.kind === "quantized" && layout !== "pad" ? base.model.linears : new Map<string, QuantizedLinear>();
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  const weights = layout === "pad" ? padWeights(config, float.weights, widths) : float.weights;
  const shapes = layout === "pad" ? llamaParamShapes(paddedConfig(config, widths)) : llamaParamShapes(config);

  const tensors: GgufTensor[] = [];
  let keptCodes = 0;
  for (const [name, shape] of shapes) {
    const g = ggufTensorName(name);
    const ne = [...shape].reverse();
    if (arch === "deci" && isRemoved(config, name) && /\.(input_layernorm|self_attn)\./.test(name)) {
      // deci writes no attention for a layer without heads, except layer 0: llama.cpp takes the head
      // size from layer 0's head count, so that layer gets one all-zero head (it adds exactly 0).
      if (layerOf(name) !== 0) continue;
      const dims = ne.map((d) => (d === 0 ? config.headDim : d));
      const data = new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(name.endsWith("layernorm.weight") ? 1 : 0);
      tensors.push({ name: g, ne: dims, type: GGML_TYPES.F32, data: encodeRows(GGML_TYPES.F32, data) });
      continue;
    }
    const q = direct.get(name.replace(/\.weight$/, ""));
    const heads = qkHeads(config, name);
    if (q && name.endsWith(".weight")) {
      const codes = ggmlBlocks(q, type, heads, config.headDim);
      if (codes) {
        tensors.push({ name: g, ne, type, data: codes });
        keptCodes++;
        continue;
      }
    }
    let data = weights.get(name)?.data;
    let dims = ne;
    if (arch === "deci" && name.includes(".mlp.") && layerShape(config, layerOf(name)).intermediateSize === 0) {
      // deci: a removed MLP is written as zero channels (see ggufWidths).
      dims = ne.map((d) => (d === 0 ? widths.ff[layerOf(name)]! : d));
      data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    }
    if (!data) throw new SlimtuneError("E_ARG", `the model has no tensor "${name}"`);
    if (heads > 0) data = permuteQK(data, layout === "pad" ? qkHeads(paddedConfig(config, widths), name) : heads, config.headDim, "gguf");
    const matrix = shape.length === 2 && !name.endsWith("norm.weight");
    const t = matrix && dims[0]! % type.blockSize === 0 ? type : GGML_TYPES.F32;
    tensors.push({ name: g, ne: dims, type: t, data: encodeRows(t, data) });
  }

  const tokenizer = readTokenizerFiles(tokenizerSource);
  const ids: { bos?: number; eos?: number } = {};
  if (config.bosTokenId !== undefined) ids.bos = config.bosTokenId;
  if (config.eosTokenId !== undefined) ids.eos = config.eosTokenId;
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: arch }],
    ["general.type", { type: "string", value: "model" }],
    ["general.name", { type: "string", value: opts.name ?? path.basename(tokenizerSource).replace(/\.gguf$/i, "") }],
    ["general.file_type", { type: "u32", value: FILE_TYPE[opts.dtype] }],
    ...(type.blockSize > 1 ? ([["general.quantization_version", { type: "u32", value: 2 }]] as Array<[string, GgufValue]>) : []),
    ...llamaHyperparameters(layout === "pad" ? paddedConfig(config, widths) : config, arch, widths),
    ...ggufTokenizerKeys(tokenizer, config.vocabSize, ids),
  ];
  writeGguf(outFile, metadata, tensors);
  return { file: outFile, architecture: arch, tensors: tensors.length, keptCodes };
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

/**
 * The layer's codes as ggml blocks when its grid is Q4_0's or Q8_0's: RTN, symmetric, groups of 32,
 * 4 bits for Q4_0 ((q − 8)·d) or 8 for Q8_0 ((q − 128)·d); the scale becomes d in float16. Null
 * when the layer has another grid (it is then dequantized and rounded again).
 */
function ggmlBlocks(q: QuantizedLinear, type: GgmlType, heads: number, headDim: number): Uint8Array | null {
  const bits = type === GGML_TYPES.Q4_0 ? 4 : type === GGML_TYPES.Q8_0 ? 8 : 0;
  if (q.kind !== "rtn" || q.groupSize !== 32 || q.spec.bits !== bits || q.zeros.some((z) => z !== 1 << (bits - 1))) return null;
  const { outFeatures: N, inFeatures: K } = q;
  const G = K / 32;
  const out = new Uint8Array(N * G * type.blockBytes);
  const view = new DataView(out.buffer);
  // Row n of the file holds layer row src(n): the Q/K permutation moves whole rows.
  const order = heads > 0 ? permuteQK(Float32Array.from({ length: N }, (_, n) => n), heads, headDim, "gguf") : null;
  for (let n = 0; n < N; n++) {
    const src = order ? order[n]! : n;
    for (let g = 0; g < G; g++) {
      const o = (n * G + g) * type.blockBytes;
      view.setUint16(o, f32ToF16Bits(q.scales[src * G + g]!), true);
      const codes = q.codes.subarray(src * K + g * 32, src * K + g * 32 + 32);
      if (bits === 8) for (let j = 0; j < 32; j++) view.setInt8(o + 2 + j, codes[j]! - 128);
      else for (let j = 0; j < 16; j++) out[o + 2 + j] = codes[j]! | (codes[j + 16]! << 4);
    }
  }
  return out;
}
