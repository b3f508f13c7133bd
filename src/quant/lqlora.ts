// LQ-LoRA (Guo et al. 2023, arXiv 2311.12023): W ≈ L₁·L₂ + Q with Q on a grid (RTN or NF4) instead of
// ReALLM's vector quantizer, initialised by the same alternation (quant/lowrank.ts). Q becomes an
// ordinary quantized model (a GPTQ or slimtune-nf4 folder) and L₁, L₂ the starting point of a LoRA
// adapter on it (lora_B = L₁, lora_A = L₂ with α = r, so the adapter adds exactly L₁·L₂), which
// fine-tuning then trains as QLoRA does.

import type { FloatWeights, HostParam } from "../arch/params.js";
import { linearLayers } from "../arch/llama/shapes.js";
import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { dequantize, quantizeLinear } from "./kinds/index.js";
import type { HostGemm } from "./linalg/host-gemm.js";
import { type LowRankFactors, alternatingInit } from "./lowrank.js";
import { checkQuantSpec, resolveGroupSize } from "./spec.js";
import { type QuantSpec, type QuantizedLinear, type QuantizedModel, mostCommonSpec } from "./types.js";

export interface LqloraOptions {
  rank: number;
  gemm: HostGemm;
  seed: number;
  /** Alternations at most (default 6). */
  maxIterations?: number;
}

export interface LqloraLayerReport {
  path: string;
  /** ‖W − L₁L₂ − Q̂‖ / ‖W‖ per alternation. */
  errors: number[];
  /** The same for Q̂ = quant(W) alone (plain RTN/NF4). */
  quantOnlyError: number;
  seconds: number;
}

/** Q (grid layers, as a QuantizedModel) and the low-rank factors of every linear layer. */
export async function lqloraQuantizeModel(
  model: FloatWeights,
  spec: QuantSpec,
  opts: LqloraOptions,
  onProgress?: (done: number, total: number, path: string) => void,
): Promise<{ qm: QuantizedModel; factors: Map<string, LowRankFactors>; report: { layers: LqloraLayerReport[]; seconds: number } }> {
  const started = performance.now();
  checkQuantSpec(spec);
  const layers = linearLayers(model.config);
  for (const l of layers) {
    resolveGroupSize(spec, l.inFeatures, l.path);
    if (!Number.isInteger(opts.rank) || opts.rank < 1 || opts.rank > Math.min(l.outFeatures, l.inFeatures)) {
      throw new SlimtuneError("E_ARG", `--rank ${opts.rank} must be an integer from 1 to min(N, K) = ${Math.min(l.outFeatures, l.inFeatures)} for ${l.path}`);
    }
  }
  const linears = new Map<string, QuantizedLinear>();
  const factors = new Map<string, LowRankFactors>();
  const reports: LqloraLayerReport[] = [];
  const owned = new Set<string>();
  for (const [i, l] of layers.entries()) {
    const t0 = performance.now();
    const w = model.weights.get(`${l.path}.weight`)!;
    const [n, k] = [l.outFeatures, l.inFeatures];
    let norm = 0;
    for (const v of w.data) norm += v * v;
    norm = Math.sqrt(norm);
    const quant = (r: Float32Array) => {
      const q = quantizeLinear(r, n, k, spec, { layer: l.path });
      return { deq: dequantize(q), state: q };
    };
    const alone = quant(w.data);
    let quantOnly = 0;
    for (let j = 0; j < w.data.length; j++) quantOnly += (w.data[j]! - alone.deq[j]!) ** 2;
    const res = await alternatingInit(w.data, n, k, opts.rank, quant, { gemm: opts.gemm, rng: new Rng(opts.seed * 1000 + i), maxIterations: opts.maxIterations ?? 6 });
    const q = res.state;
    const bias = model.weights.get(`${l.path}.bias`);
    if (bias) q.bias = bias.data;
    linears.set(l.path, q);
    factors.set(l.path, res.factors);
    owned.add(`${l.path}.weight`).add(`${l.path}.bias`);
    reports.push({ path: l.path, errors: res.errors.map((e) => e / norm), quantOnlyError: Math.sqrt(quantOnly) / norm, seconds: (performance.now() - t0) / 1000 });
    onProgress?.(i + 1, layers.length, l.path);
  }
  const dense = new Map<string, HostParam>();
  for (const [name, p] of model.weights) if (!owned.has(name)) dense.set(name, p);
  const qm: QuantizedModel = {
    config: model.config,
    spec: mostCommonSpec([...linears.values()].map((q) => q.spec as QuantSpec))!,
    linears,
    dense,
    sourceDir: model.sourceDir,
    method: { name: "lqlora", config: { lqlora_rank: opts.rank } },
  };
  return { qm, factors, report: { layers: reports, seconds: (performance.now() - started) / 1000 } };
}
