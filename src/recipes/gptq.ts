// GPTQ over a whole model, block by block as the reference (llama.py `llama_sequential`) does:
// calibration windows are embedded once; each decoder block then runs on the hidden states produced
// by the already-quantized blocks before it, its linear layers' input Gram matrices are accumulated
// in the block's graph (H = 2·XᵀX/n, float64 on the host), the layers are quantized with GPTQ, and
// the quantized block produces the next block's inputs. "True sequential" (the reference's
// default) goes further inside a block: q/k/v, then o, then gate/up, then down, each group's
// Hessian taken with the groups before it already quantized.
//
// Lives in recipes/ because it chains a model graph (models/), calibration windows (data/) and the
// per-layer algorithm (quant/gptq.ts); nothing below needs it.

import { linearLayers } from "../arch/llama/shapes.js";
import { isGpt2 } from "../arch/llama/config.js";
import { GPT2_WPE, GPT2_WTE } from "../arch/gpt2/names.js";
import { assertGpt2Positions } from "../models/gpt2/graph.js";
import type { FloatWeights, HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { CompiledGraph, Graph, type HostTensor } from "../engine/index.js";
import { DenseParams } from "../models/llama/params.js";
import { HIDDEN_OUT, blockParamNames, buildBlockGraph, embedRows, forEachChunk, gramName, inputGroups } from "../models/llama/block.js";
import { dequantizeRtn, type RtnStats } from "../quant/kinds/rtn.js";
import { type GptqSettings, type PreparedHessian, gptqQuantize, prepareHessianBlocked } from "../quant/gptq.js";
import { type BlockTarget, gptqQuantizeBlocks } from "../quant/gptq-blocks.js";
import { HostGemm } from "../quant/linalg/host-gemm.js";
import type { QuantPlan } from "../quant/quantize-model.js";
import { checkQuantSpec, resolveGroupSize } from "../quant/spec.js";
import { type QuantSpec, type QuantizedLinear, type QuantizedModel, mostCommonSpec } from "../quant/types.js";

export interface GptqModelOptions {
  settings: GptqSettings;
  /** Quantize q/k/v, o, gate/up, down in turn, each from inputs of the groups already quantized. */
  trueSequential: boolean;
  /** Calibration window length T; the calibration ids hold S·T tokens. */
  seq: number;
  /** Windows per graph run. */
  batch: number;
  threads?: number;
  stats?: RtnStats;
  onProgress?: (done: number, total: number, path: string) => void;
}

export interface GptqLayerReport {
  path: string;
  bits: number;
  /** GPTQ's own error estimate Σ (w − q)² / U_ii² / 2. */
  loss: number;
  /** Columns no calibration input reached. */
  deadColumns: number;
  dampPercent: number;
  /** Preparing the Hessian (act-order, dampening, chol(H⁻¹)), shared by layers of one input. */
  hessianSeconds: number;
  /** The column loop and its lazy updates. */
  gptqSeconds: number;
}

export interface GptqBlockReport {
  layer: number;
  /** Forward passes of the block with Gram outputs, and the final pass for the next block's input. */
  forwardSeconds: number;
  hessianSeconds: number;
  gptqSeconds: number;
  seconds: number;
}

export interface GptqReport {
  calibrationTokens: number;
  layers: GptqLayerReport[];
  blocks: GptqBlockReport[];
  seconds: number;
}

/** GPTQ-quantizes `model`'s linear layers by `plan` (every spec "rtn"); `calib` holds S·seq token ids. */
export async function gptqQuantizeModel(model: FloatWeights, plan: QuantPlan, calib: Int32Array, opts: GptqModelOptions): Promise<{ qm: QuantizedModel; report: GptqReport }> {
  const { config } = model;
  const specFor = typeof plan === "function" ? plan : () => plan;
  const specs = new Map<string, QuantSpec>();
  for (const l of linearLayers(config)) {
    const spec = specFor(l.path);
    if (!spec) continue;
    checkQuantSpec(spec);
    if (spec.scheme !== "rtn") throw new SlimtuneError("E_ARG", `GPTQ writes integer codes; ${l.path} asks for scheme "${spec.scheme}" — use --scheme rtn with --method gptq`);
    resolveGroupSize(spec, l.inFeatures, l.path);
    specs.set(l.path, spec);
  }
  if (specs.size === 0) throw new SlimtuneError("E_ARG", "the quantization plan leaves every linear layer in float; give at least one layer a spec");
  const linears = new Map<string, QuantizedLinear>();
  const report = await sequentialGptq(model, new Set(specs.keys()), calib, opts, async (path, w, n, k, prep, gemm) => {
    const spec = specs.get(path)!;
    const res = await gptqQuantize(w, n, k, prep, spec, { settings: opts.settings, gemm, layer: path, ...(opts.stats ? { stats: opts.stats } : {}) });
    const bias = model.weights.get(`${path}.bias`);
    if (bias) res.layer.bias = bias.data;
    linears.set(path, res.layer);
    return { values: dequantizeRtn(res.layer), loss: res.loss, seconds: res.seconds, bits: spec.bits };
  });
  const owned = new Set<string>();
  for (const p of linears.keys()) owned.add(`${p}.weight`).add(`${p}.bias`);
  const dense = new Map<string, HostParam>();
  for (const [name, param] of model.weights) if (!owned.has(name)) dense.set(name, param);
  const spec = mostCommonSpec([...linears.values()].map((q) => q.spec as QuantSpec))!;
  const settings = opts.settings;
  const qm: QuantizedModel = {
    config,
    spec,
    linears,
    dense,
    sourceDir: model.sourceDir,
    method: { name: "gptq", config: { damp_percent: settings.dampPercent, true_sequential: opts.trueSequential, static_groups: false } },
  };
  return { qm, report };
}

/**
 * GPTQ onto a runtime's block grids (gptq-blocks.ts): each linear layer whose `targetFor` is a block
 * format with whole super-blocks in its rows becomes that format's blocks, calibrated; the others
 * take `fallback`, the values the exported file will hold for them, so the layers after see what the
 * file computes. Returns the model with each layer's decoded values and the blocks (by tensor name).
 */
export async function gptqQuantizeModelOnBlocks(
  model: FloatWeights,
  calib: Int32Array,
  opts: GptqModelOptions,
  targetFor: (path: string) => BlockTarget | null,
  fallback: (path: string, values: Float32Array, rowLength: number) => Float32Array,
): Promise<{ weights: Map<string, HostParam>; blocks: Map<string, { target: BlockTarget; data: Uint8Array }>; report: GptqReport }> {
  const paths = new Set(linearLayers(model.config).map((l) => l.path));
  const weights = new Map(model.weights);
  const blocks = new Map<string, { target: BlockTarget; data: Uint8Array }>();
  const report = await sequentialGptq(model, paths, calib, opts, async (path, w, n, k, prep, gemm) => {
    let values: Float32Array;
    let loss = 0;
    let seconds = 0;
    const target = targetFor(path);
    if (target && k % target.size === 0) {
      const res = await gptqQuantizeBlocks(w, n, k, prep, target, gemm, path);
      blocks.set(`${path}.weight`, { target, data: res.blocks });
      ({ values, loss, seconds } = res);
    } else values = fallback(path, w, k);
    weights.set(`${path}.weight`, { data: values, shape: [n, k] });
    return { values, loss, seconds, bits: target ? (8 * target.bytes) / target.size : 32 };
  });
  return { weights, blocks, report };
}

type LayerQuantizer = (path: string, w: Float32Array, n: number, k: number, prep: PreparedHessian, gemm: HostGemm) => Promise<{ values: Float32Array; loss: number; seconds: number; bits: number }>;

/** The block-by-block GPTQ loop; `quantizeLayer` quantizes one layer and says what it now computes. */
async function sequentialGptq(model: FloatWeights, paths: ReadonlySet<string>, calib: Int32Array, opts: GptqModelOptions, quantizeLayer: LayerQuantizer): Promise<GptqReport> {
  const started = performance.now();
  const { config } = model;
  let quantized = 0;
  const T = opts.seq;
  if (isGpt2(config)) assertGpt2Positions(config, T); // no learned position past n_positions
  if (calib.length === 0 || calib.length % T !== 0) throw new SlimtuneError("E_ARG", `calibration ids (${calib.length}) are not whole windows of ${T} tokens`);
  const embed = model.weights.get(isGpt2(config) ? GPT2_WTE : "model.embed_tokens.weight");
  if (!embed) throw new SlimtuneError("E_ARG", "model has no token embedding; GPTQ needs a model loaded with LlamaModel.load");
  for (const id of calib) {
    if (id < 0 || id >= config.vocabSize) throw new SlimtuneError("E_DATA", `calibration token id ${id} is outside the model's vocabulary of ${config.vocabSize}; tokenize the calibration text with the model's tokenizer`);
  }

  const C = config.hiddenSize;
  const rows = calib.length;
  const chunks = { rows, hidden: C, seq: T, batch: Math.max(1, opts.batch) };
  let x = embedRows(embed, calib, config);
  // GPT-2 adds its learned position embedding to each window's token t (every window starts at 0).
  if (isGpt2(config)) addPositionRows(x, model.weights.get(GPT2_WPE)!, T);
  const gemm = new HostGemm({ threads: opts.threads });
  const layers: GptqLayerReport[] = [];
  const blocks: GptqBlockReport[] = [];
  const total = paths.size;
  try {
    for (let i = 0; i < config.numLayers; i++) {
      const blockStart = performance.now();
      let forwardSeconds = 0;
      let hessianSeconds = 0;
      let gptqSeconds = 0;
      // Weights fed to the block's graphs: float at first, dequantized as groups are quantized.
      const feeds = new Map<string, HostParam>();
      for (const name of blockParamNames(model.weights, i, config)) feeds.set(name, model.weights.get(name)!);
      const names = new Set(feeds.keys());
      const run = async (grams: string[], onChunk: (out: Record<string, HostTensor>, first: number, n: number) => void) => {
        const t0 = performance.now();
        const compiled = new Map<number, Promise<CompiledGraph>>();
        const graphFor = (b: number) => {
          let c = compiled.get(b);
          if (!c) {
            const { graph, outputs } = buildBlockGraph(config, i, new DenseParams(new Graph(), feeds, names), b, T, grams, { hidden: grams.length === 0 });
            c = CompiledGraph.compile(graph, outputs, { threads: opts.threads, memoryArena: false });
            compiled.set(b, c);
          }
          return c;
        };
        try {
          await forEachChunk(x, chunks, graphFor, Object.fromEntries(feeds), onChunk);
        } finally {
          for (const c of compiled.values()) await (await c).release();
        }
        forwardSeconds += (performance.now() - t0) / 1000;
      };
      const groups = inputGroups(config, i)
        .map((g) => g.filter((p) => paths.has(p)))
        .filter((g) => g.length > 0);
      const passes = opts.trueSequential ? groups.map((g) => [g]) : [groups];
      for (const pass of passes) {
        const grams = pass.map((g) => g[0]!);
        const sums = new Map<string, Float64Array>();
        await run(grams, (out) => {
          for (const p of grams) {
            const gram = out[gramName(p)]!.data as Float32Array;
            let acc = sums.get(p);
            if (!acc) sums.set(p, (acc = new Float64Array(gram.length)));
            for (let j = 0; j < gram.length; j++) acc[j]! += gram[j]!;
          }
        });
        for (const group of pass) {
          const first = group[0]!;
          const h = sums.get(first)!;
          const k = Math.round(Math.sqrt(h.length));
          for (let j = 0; j < h.length; j++) h[j]! *= 2 / rows;
          const prep = await prepareHessianBlocked(h, k, opts.settings, gemm, first);
          hessianSeconds += prep.seconds;
          for (const path of group) {
            const w = model.weights.get(`${path}.weight`)!;
            const [n] = w.shape as [number, number];
            const res = await quantizeLayer(path, w.data, n, k, prep, gemm);
            feeds.set(`${path}.weight`, { data: res.values, shape: w.shape });
            gptqSeconds += res.seconds;
            layers.push({ path, bits: res.bits, loss: res.loss, deadColumns: prep.dead.length, dampPercent: prep.dampPercent, hessianSeconds: prep.seconds, gptqSeconds: res.seconds });
            opts.onProgress?.(++quantized, total, path);
          }
        }
      }
      // The quantized block turns this block's inputs into the next one's.
      if (i + 1 < config.numLayers) {
        const next = new Float32Array(x.length);
        await run([], (out, first) => next.set(out[HIDDEN_OUT]!.data as Float32Array, first * C));
        x = next;
      }
      blocks.push({ layer: i, forwardSeconds, hessianSeconds, gptqSeconds, seconds: (performance.now() - blockStart) / 1000 });
    }
  } finally {
    await gemm.release();
  }

  return { calibrationTokens: rows, layers, blocks, seconds: (performance.now() - started) / 1000 };
}

/** Adds wpe[t] to row t of each window of T rows of x [S·T, C] (GPT-2's position embeddings). */
function addPositionRows(x: Float32Array, wpe: HostParam, T: number): void {
  const C = wpe.shape[1]!;
  for (let r = 0; r < x.length / C; r++) {
    const t = r % T;
    for (let c = 0; c < C; c++) x[r * C + c]! += wpe.data[t * C + c]!;
  }
}
