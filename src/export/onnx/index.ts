// A model folder transformers.js loads (formats.md §4): onnx/model{suffix}.onnx by its dtype naming,
// config.json, the tokenizer files and generation_config.json. The ONNX graph is the very KV-cache
// decoder `slimtune generate` runs (models/llama/kv-graph.ts) with a symbolic batch, so both compute
// the same thing with the same kernels: fp32 float weights; fp16 weights stored in half precision
// and widened at load; q4 and q8 as MatMulNBits (4- or 8-bit, groups of 32, symmetric, accuracy
// level 4) — a 4-bit model's own codes when its layers fit, else round-to-nearest from float.

import fs from "node:fs";
import path from "node:path";

import type { HostParam, ParamSource } from "../../arch/params.js";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { float32ToFloat16 } from "../../core/f16.js";
import { type Graph, Graph as GraphClass, type Value, add, cast, gemm, toOnnxBytes } from "../../engine/index.js";
import { toHfConfigJson } from "../../formats/hf-config.js";
import { copyTokenizerFiles } from "../../formats/tokenizer.js";
import { buildKvGraph } from "../../models/llama/kv-graph.js";
import { DenseParams } from "../../models/llama/params.js";
import type { LoadedBase } from "../../models/load.js";
import { canUseMatMulNBits } from "../../models/parts/matmul-nbits.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import type { QuantizedModel } from "../../quant/types.js";
import { dequantizedModel } from "../deploy.js";

export const ONNX_DTYPES = ["fp32", "fp16", "q4", "q8"] as const;
export type OnnxDtype = (typeof ONNX_DTYPES)[number];

/** transformers.js' DEFAULT_DTYPE_SUFFIX_MAPPING for the dtypes written here. */
export const ONNX_FILE: Record<OnnxDtype, string> = { fp32: "model.onnx", fp16: "model_fp16.onnx", q4: "model_q4.onnx", q8: "model_quantized.onnx" };

/** protobuf's 2 GiB message limit: larger graphs would need external data files. */
const MAX_ONNX_BYTES = 2 ** 31 - 1;

export interface OnnxExportReport {
  modelFile: string;
  bytes: number;
}

export async function exportOnnx(base: LoadedBase, source: string, outDir: string, opts: { dtype: OnnxDtype }): Promise<OnnxExportReport> {
  const config = base.model.config;
  const graph = new GraphClass();
  const params = paramsFor(base, opts.dtype, graph);
  const { outputs } = buildKvGraph(config, params, { batch: "dynamic", seq: "dynamic", past: true, logits: "all" });
  const bytes = toOnnxBytes(graph, outputs);
  if (bytes.byteLength > MAX_ONNX_BYTES) {
    throw new SlimtuneError("E_ARG", `the ONNX graph would be ${bytes.byteLength} bytes, over protobuf's 2 GiB; export with --dtype q4 or q8`);
  }
  const modelFile = path.join("onnx", ONNX_FILE[opts.dtype]);
  replaceDirAtomic(outDir, (tmp) => {
    fs.mkdirSync(path.join(tmp, "onnx"));
    writeFileAtomic(path.join(tmp, modelFile), bytes);
    copyTokenizerFiles(source, tmp);
    const json = toHfConfigJson(config, { torch_dtype: "float32", "transformers.js_config": { dtype: opts.dtype } });
    writeFileAtomic(path.join(tmp, "config.json"), `${JSON.stringify(json, null, 2)}\n`);
    if (!fs.existsSync(path.join(tmp, "generation_config.json"))) {
      const gen: Record<string, unknown> = {};
      if (config.bosTokenId !== undefined) gen.bos_token_id = config.bosTokenId;
      if (config.eosTokenId !== undefined) gen.eos_token_id = config.eosTokenIds && config.eosTokenIds.length > 1 ? config.eosTokenIds : config.eosTokenId;
      writeFileAtomic(path.join(tmp, "generation_config.json"), `${JSON.stringify(gen, null, 2)}\n`);
    }
  });
  return { modelFile, bytes: bytes.byteLength };
}

function paramsFor(base: LoadedBase, dtype: OnnxDtype, graph: Graph): ParamSource {
  if (dtype === "q4" || dtype === "q8") {
    const bits = dtype === "q4" ? 4 : 8;
    return new QuantizedParams(graph, nbitsModel(base, bits), { fused: true, accuracyLevel: 4 });
  }
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  return dtype === "fp16" ? new HalfParams(graph, float.weights) : new DenseParams(graph, float.weights, new Set());
}

/** A model whose every linear layer MatMulNBits runs at `bits`: the base's own when it fits, else RTN from float. */
function nbitsModel(base: LoadedBase, bits: 4 | 8): QuantizedModel {
  if (base.kind === "quantized" && [...base.model.linears.values()].every((q) => q.kind === "rtn" && q.spec.bits === bits && canUseMatMulNBits(q))) return base.model;
  const float = base.kind === "float" ? base.model : dequantizedModel(base.model);
  return quantizeModel(float, { scheme: "rtn", bits, groupSize: 32, symmetric: true });
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


