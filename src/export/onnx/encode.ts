// The transformers.js folder as bytes, with no file system: what exportOnnx writes in Node and what
// the web page zips for a download (the same files, byte for byte, from the same model).
//
// A model folder transformers.js loads (formats.md §4): onnx/model{suffix}.onnx by its dtype naming,
// config.json, the tokenizer files and generation_config.json. The ONNX graph is the very KV-cache
// decoder `slimtune generate` runs (models/llama/kv-graph.ts) with a symbolic batch, so both compute
// the same thing with the same kernels: fp32 float weights; fp16 weights stored in half precision
// and widened at load; q2, q4 and q8 as MatMulNBits (accuracy level 4 unless asked for 0) — each
// layer's own codes, zero points and group size when they fit within the dtype's bits (3-bit codes
// widened into 4-bit fields, values unchanged; GPTQ act-order as a lossless gather of the input
// columns into group order, models/parts/quantized-linear.ts), else round-to-nearest from float
// (groups of 32, symmetric). ReALLM layers are written as they are, low-rank factors plus a codebook
// Gather by their codes at stored widths (QuantizedParams vq "compact"). Without a dtype the model keeps what it is: a float model fp32, a
// quantized one every layer at its own bits in one file named by its widest (q2, q4 or q8), else
// E_ARG naming the dtypes that would change it. Every change is recorded per layer (export/changes.ts).

import type { HostParam, ParamSource } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { float32ToFloat16, roundToF16 } from "../../core/f16.js";
import { type ExternalData, type Graph, Graph as GraphClass, type Value, add, cast, gemm, toOnnxBytes, usedConstants } from "../../engine/index.js";
import { toHfConfigJson } from "../../formats/hf-config.js";
import { buildKvGraph } from "../../models/llama/kv-graph.js";
import { exportedPositionBase } from "../../models/llama/gemma3-attention.js";
import { DenseParams } from "../../models/llama/params.js";
import type { LoadedBase } from "../../models/load.js";
import { canUseMatMulNBits } from "../../models/parts/matmul-nbits.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import { dequantize } from "../../quant/kinds/index.js";
import { reallmBitsPerWeight } from "../../quant/kinds/reallm.js";
import { TABLE_GROUP, dequantizedTables, embeddingName, quantizeTables } from "../../quant/tables.js";
import type { QuantizedLinear, QuantizedModel, QuantizedTables, RtnLinear } from "../../quant/types.js";
import { type ChangeKind, type TensorChange, groupChanges, layerWords } from "../changes.js";
import { dequantizedModel } from "../merged.js";

export const ONNX_DTYPES = ["fp32", "fp16", "q2", "q4", "q8"] as const;
export type OnnxDtype = (typeof ONNX_DTYPES)[number];

/** transformers.js' DEFAULT_DTYPE_SUFFIX_MAPPING for the dtypes written here. */
export const ONNX_FILE: Record<OnnxDtype, string> = { fp32: "model.onnx", fp16: "model_fp16.onnx", q2: "model_q2.onnx", q4: "model_q4.onnx", q8: "model_quantized.onnx" };

/** The widest codes each quantized dtype holds: its layers keep their own codes up to these bits. */
const DTYPE_BITS = { q2: 2, q4: 4, q8: 8 } as const;
type NBitsDtype = keyof typeof DTYPE_BITS;
const isNBits = (d: OnnxDtype): d is NBitsDtype => d in DTYPE_BITS;

/**
 * Weights past this go to ONNX external data (protobuf caps a message at 2 GiB; the margin leaves
 * room for the graph itself): onnx/<file>.onnx_data, which config.json's transformers.js_config
 * names in use_external_data_format so transformers.js fetches it beside the model.
 */
export const EXTERNAL_DATA_ABOVE = 1.8 * 2 ** 30;
/** Initializers smaller than this stay inside the model file even with external data (as onnx's own writer does). */
const EXTERNAL_MIN_TENSOR = 1024;
/** Offsets of large tensors in the data file are page-aligned, so runtimes may map them. */
const EXTERNAL_ALIGN = 4096;

export interface OnnxExportReport {
  modelFile: string;
  /** Bytes of the model file plus its external data. */
  bytes: number;
  /** The external data file beside the model (models whose weights pass EXTERNAL_DATA_ABOVE). */
  dataFile?: string;
  /** The dtype written (the model's own when none was asked for). */
  dtype: OnnxDtype;
  /** What the dtype did to the weights (empty when the export keeps what the model is). */
  changes: TensorChange[];
}

export interface OnnxExportOptions {
  dtype?: OnnxDtype;
  /** Keep what each changed tensor became (TensorChange.decoded), to measure it. */
  keepDecoded?: boolean;
  /** Weight bytes above which the export writes external data (default EXTERNAL_DATA_ABOVE; tests lower it). */
  externalDataAbove?: number;
  /**
   * MatMulNBits' accuracy_level in the file: 4 (default) rounds activations to int8 per block, 3–5×
   * faster at one token and what `slimtune generate` runs; 0 computes in float32, exactly.
   */
  accuracyLevel?: 0 | 4;
}

/** One file of the folder, by its path inside it ("onnx/model_q4.onnx"), as byte chunks written in order. */
export interface OnnxFolderFile {
  name: string;
  chunks: Uint8Array[];
}

/** A model folder's tokenizer files by name (those of TOKENIZER_FILES it has), as they are copied into the export. */
export type TokenizerFileBytes = ReadonlyMap<string, Uint8Array>;

const utf8 = (text: string) => new TextEncoder().encode(text);

/**
 * The tokenizer files of a model that came as a GGUF file, rebuilt from its metadata in the form
 * formats/tokenizer.ts' copyTokenizerFiles writes them (compact tokenizer.json, indented config).
 */
export function tokenizerFilesFromObjects(json: unknown, config: unknown): Map<string, Uint8Array> {
  return new Map([
    ["tokenizer.json", utf8(JSON.stringify(json))],
    ["tokenizer_config.json", utf8(`${JSON.stringify(config, null, 2)}\n`)],
  ]);
}

/**
 * Every file of the transformers.js folder for `base` (adapters already merged): the ONNX model
 * (and its external data), config.json, the tokenizer files as given and generation_config.json
 * (the source's when it has one, else its BOS/EOS ids).
 */
export function encodeOnnxFolder(base: LoadedBase, tokenizerFiles: TokenizerFileBytes, opts: OnnxExportOptions): { files: OnnxFolderFile[]; report: OnnxExportReport } {
  const config = base.model.config;
  const dtype = opts.dtype ?? ownDtype(base);
  const graph = new GraphClass();
  const changes: TensorChange[] = [];
  const params = paramsFor(base, dtype, opts.dtype !== undefined, graph, changes, opts.keepDecoded === true, opts.accuracyLevel ?? 4);
  const { outputs } = buildKvGraph(config, params, { batch: "dynamic", seq: "dynamic", past: true, logits: "all", positionBase: exportedPositionBase(config) });
  const weightBytes = usedConstants(graph, outputs).reduce((s, c) => s + c.data!.byteLength, 0);
  const fileName = ONNX_FILE[dtype];
  const data = weightBytes > (opts.externalDataAbove ?? EXTERNAL_DATA_ABOVE) ? new DataFile(`${fileName}_data`) : null;
  const bytes = toOnnxBytes(graph, outputs, new Set(), data ?? undefined);
  const modelFile = `onnx/${fileName}`;
  const files: OnnxFolderFile[] = [{ name: modelFile, chunks: [bytes] }];
  if (data) files.push({ name: `onnx/${data.location}`, chunks: data.parts });
  for (const [name, content] of tokenizerFiles) files.push({ name, chunks: [content] });
  const jsConfig = { dtype, ...(data ? { use_external_data_format: { [fileName]: 1 } } : {}) };
  const json = toHfConfigJson(config, { torch_dtype: "float32", "transformers.js_config": jsConfig });
  files.push({ name: "config.json", chunks: [utf8(`${JSON.stringify(json, null, 2)}\n`)] });
  if (!tokenizerFiles.has("generation_config.json")) {
    const gen: Record<string, unknown> = {};
    if (config.bosTokenId !== undefined) gen.bos_token_id = config.bosTokenId;
    if (config.eosTokenId !== undefined) gen.eos_token_id = config.eosTokenIds && config.eosTokenIds.length > 1 ? config.eosTokenIds : config.eosTokenId;
    files.push({ name: "generation_config.json", chunks: [utf8(`${JSON.stringify(gen, null, 2)}\n`)] });
  }
  const report: OnnxExportReport = { modelFile, bytes: bytes.byteLength + (data?.size ?? 0), dtype, changes, ...(data ? { dataFile: `onnx/${data.location}` } : {}) };
  return { files, report };
}

/** The external data file, gathered in memory in order (its parts are written one after another). */
class DataFile implements ExternalData {
  readonly minBytes = EXTERNAL_MIN_TENSOR;
  readonly parts: Uint8Array[] = [];
  size = 0;

  constructor(readonly location: string) {}

  place(bytes: Uint8Array): number {
    const align = bytes.byteLength >= EXTERNAL_ALIGN ? EXTERNAL_ALIGN : 64;
    const pad = (align - (this.size % align)) % align;
    if (pad > 0) this.parts.push(new Uint8Array(pad));
    const offset = this.size + pad;
    this.parts.push(bytes);
    this.size = offset + bytes.byteLength;
    return offset;
  }
}

/**
 * The file holds the layer as it is within `maxBits`: MatMulNBits on its own codes (2, 3 widened to 4,
 * or 8 bits), or a ReALLM layer as its factors and codebook lookup at its bits per weight.
 */
function fitsNBits(q: QuantizedLinear, maxBits: number): boolean {
  if (q.kind === "reallm") return reallmBitsPerWeight(q.spec, q.outFeatures, q.inFeatures) <= maxBits;
  return q.kind === "rtn" && nbitsOf(q) <= maxBits && canUseMatMulNBits(q);
}
/** The bits MatMulNBits stores a layer's codes at: 3-bit codes go into 4-bit fields (same values). */
const nbitsOf = (q: RtnLinear) => (q.spec.bits === 3 ? 4 : q.spec.bits);

/**
 * The dtype that keeps what the model is: every layer at its own bits in one file, named by the
 * widest (transformers.js picks the file by that name only); E_ARG when some layer fits no dtype.
 */
function ownDtype(base: LoadedBase): OnnxDtype {
  if (base.kind === "float") return "fp32";
  const layers = [...base.model.linears.values()];
  for (const dtype of ["q2", "q4", "q8"] as const) if (layers.every((q) => fitsNBits(q, DTYPE_BITS[dtype]))) return dtype;
  const method = base.model.method?.name;
  const odd = [...base.model.linears].filter(([, q]) => !fitsNBits(q, 8)).map(([p, q]) => ({ tensor: `${p}.weight`, from: layerWords(q, method), to: "?", kind: "re-rounded" as const }));
  const groups = groupChanges(odd).map((g) => `${g.from} (${g.tensors})`).join("; ");
  throw new SlimtuneError(
    "E_ARG",
    `these quantized layers cannot be written for transformers.js at their own bits: ${groups} — MatMulNBits here runs 2-, 4- or 8-bit codes (3-bit widened to 4) in groups of 16–128. Exporting them changes their weights: pass --dtype q4 or q8 to round them onto that grid, or --dtype fp32 to write their values as float (larger); the export then prints each change with its KL to the source (given --data)`,
  );
}

function paramsFor(base: LoadedBase, dtype: OnnxDtype, asked: boolean, graph: Graph, changes: TensorChange[], keepDecoded: boolean, accuracyLevel: 0 | 4): ParamSource {
  const method = base.kind === "quantized" ? base.model.method?.name : undefined;
  const record = (tensor: string, from: string, to: string, kind: ChangeKind, values: () => Float32Array) => {
    const change: TensorChange = { tensor, from, to, kind };
    if (keepDecoded) change.decoded = values();
    changes.push(change);
  };
  if (isNBits(dtype)) {
    const bits = DTYPE_BITS[dtype];
    const model = nbitsModel(base, bits);
    for (const [p, q] of model.linears) {
      const own = base.kind === "quantized" ? base.model.linears.get(p) : undefined;
      if (own === q) {
        // Lossless, but the file holds wider codes than the folder: said, so sizes add up.
        if (q.kind === "rtn" && q.spec.bits === 3) record(`${p}.weight`, layerWords(q, method), "MatMulNBits 4-bit (3-bit stored as 4-bit codes, values unchanged)", "widened", () => dequantize(q));
        continue;
      }
      record(`${p}.weight`, own ? layerWords(own, method) : "float", `MatMulNBits ${bits}-bit g32 symmetric`, own ? "re-rounded" : "quantized", () => dequantize(q));
    }
    const tables = tablesFor(base, dtype, asked, record);
    return new QuantizedParams(graph, model, { fused: true, accuracyLevel, vq: "compact", packThreeBit: true, ...(tables ? { tables } : {}) });
  }
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  const to = dtype === "fp16" ? "float16" : "float32";
  for (const [name, w] of float.weights) {
    const own = base.kind === "quantized" ? base.model.linears.get(name.replace(/\.weight$/, "")) : undefined;
    const halfExact = dtype === "fp32" || w.data.every((v) => roundToF16(v) === v);
    if (own && name.endsWith(".weight")) record(name, layerWords(own, method), to, "upcast", () => (dtype === "fp16" ? w.data.map(roundToF16) : w.data));
    else if (!halfExact) record(name, "float", to, "re-rounded", () => w.data.map(roundToF16));
  }
  return dtype === "fp16" ? new HalfParams(graph, float.weights) : new DenseParams(graph, float.weights, new Set());
}

/**
 * Embedding and LM head: the model's own tables when it has them; quantized (RTN g32 symmetric, 4-bit
 * for q2 and q4 — GatherBlockQuantized runs 4 or 8 — and 8-bit for q8) when the user asked for the
 * dtype, so `--dtype q4` is a ~4-bit file; else float as the folder has them.
 */
function tablesFor(base: LoadedBase, dtype: NBitsDtype, asked: boolean, record: (tensor: string, from: string, to: string, kind: ChangeKind, values: () => Float32Array) => void): QuantizedTables | undefined {
  if (base.kind === "quantized" && base.model.tables) return base.model.tables;
  if (!asked) return undefined;
  const config = base.model.config;
  const bits = dtype === "q8" ? 8 : 4;
  const tables = quantizeTables(config, base.kind === "float" ? base.model.weights : base.model.dense, bits);
  if (!tables) return undefined;
  const decoded = dequantizedTables(config, tables);
  const grid = `${bits}-bit g${TABLE_GROUP} symmetric`;
  const tied = config.tieWordEmbeddings ? " (also the tied LM head through MatMulNBits, one tensor)" : "";
  const embed = embeddingName(config);
  if (tables.embedding) record(embed, "float", `GatherBlockQuantized ${grid}${tied}`, "quantized", () => decoded.get(embed)!.data);
  if (tables.lmHead && !config.tieWordEmbeddings) record("lm_head.weight", "float", `MatMulNBits ${grid}`, "quantized", () => decoded.get("lm_head.weight")!.data);
  return tables;
}

/** Every linear layer for MatMulNBits: each layer's own codes when they fit within `bits`, else RTN at `bits` from its float weights. */
function nbitsModel(base: LoadedBase, bits: 2 | 4 | 8): QuantizedModel {
  if (base.kind === "quantized" && [...base.model.linears.values()].every((q) => fitsNBits(q, bits))) return base.model;
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  const rounded = quantizeModel(float, { scheme: "rtn", bits, groupSize: 32, symmetric: true });
  if (base.kind === "float") return rounded;
  const linears = new Map([...rounded.linears].map(([p, q]) => {
    const own = base.model.linears.get(p);
    return [p, own && fitsNBits(own, bits) ? own : q];
  }));
  return { ...rounded, linears };
}

/** Float weights stored as float16 initializers, widened to float32 where the graph reads them. */
class HalfParams implements ParamSource {
  private readonly values = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    private readonly weights: ReadonlyMap<string, HostParam>,
  ) {}

  tensor(name: string): Value {
    let v = this.values.get(name);
    if (!v) {
      const w = this.weights.get(name);
      if (!w) throw new SlimtuneError("E_ARG", `the model has no weight "${name}"`);
      v = cast(this.graph.constant(float32ToFloat16(w.data), w.shape, "float16", name), "float32");
      this.values.set(name, v);
    }
    return v;
  }

  linear(pathName: string, x: Value): Value {
    const y = gemm(x, this.tensor(`${pathName}.weight`), { transB: true });
    return this.weights.has(`${pathName}.bias`) ? add(y, this.tensor(`${pathName}.bias`)) : y;
  }
}


