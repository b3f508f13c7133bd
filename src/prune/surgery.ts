// The one structured-pruning surgery every method shares (FineGates, QPruner, Pruning-Adapter):
// given which attention heads, key/value groups and MLP channels each layer keeps, cut the rows and
// columns of the removed dependency groups (arch/llama/groups.ts) out of a float model and record
// the new per-layer widths in its config.

import type { LayerShape, LlamaConfig } from "../arch/llama/config.js";
import { layerShape } from "../arch/llama/config.js";
import { assertPrunable, headsPerKvGroup } from "../arch/llama/groups.js";
import { layerPrefix } from "../arch/llama/names.js";
import type { HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { LlamaModel } from "../models/llama/model.js";

/**
 * What one layer keeps, by original index. Query heads come in blocks of equal size, one block per
 * kept key/value group, in the order of `kvHeads` (GQA needs every group equally wide): head
 * `heads[b·r + j]` must read key/value head `kvHeads[b]`.
 */
export interface LayerKeep {
  heads: number[];
  kvHeads: number[];
  channels: number[];
}

export interface PruneReport {
  parametersBefore: number;
  parametersAfter: number;
  /** Parameters of the decoder blocks alone (what structured pruning can remove), before and after. */
  blockParametersBefore: number;
  blockParametersAfter: number;
  layers: Array<{ heads: [number, number]; kvHeads: [number, number]; channels: [number, number] }>;
}

/** Cuts every layer of `model` down to `keep[i]`; the weights of `model` are not modified. */
export function removeStructure(model: LlamaModel, keep: readonly LayerKeep[]): { model: LlamaModel; report: PruneReport } {
  assertPrunable(model.config, "structured pruning");
  const config = model.config;
  if (keep.length !== config.numLayers) {
    throw new SlimtuneError("E_ARG", `a pruning plan must list all ${config.numLayers} layers, got ${keep.length}`);
  }
  const D = config.headDim;
  const weights = new Map(model.weights);
  const layerShapes: LayerShape[] = [];
  const report: PruneReport["layers"] = [];
  keep.forEach((k, i) => {
    const p = layerPrefix(i);
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    checkKeep(config, i, k);
    const rows = (units: number[], width: number) => units.flatMap((u) => Array.from({ length: width }, (_, d) => u * width + d));
    const qRows = rows(k.heads, D);
    const kvRows = rows(k.kvHeads, D);
    selectRows(weights, `${p}.self_attn.q_proj`, qRows);
    selectRows(weights, `${p}.self_attn.k_proj`, kvRows);
    selectRows(weights, `${p}.self_attn.v_proj`, kvRows);
    selectCols(weights, `${p}.self_attn.o_proj`, qRows);
    selectRows(weights, `${p}.mlp.gate_proj`, k.channels);
    selectRows(weights, `${p}.mlp.up_proj`, k.channels);
    selectCols(weights, `${p}.mlp.down_proj`, k.channels);
    layerShapes.push({ numHeads: k.heads.length, numKvHeads: k.kvHeads.length, intermediateSize: k.channels.length });
    report.push({ heads: [H, k.heads.length], kvHeads: [KV, k.kvHeads.length], channels: [F, k.channels.length] });
  });
  // Equal widths everywhere are a plain config (transformers, GPTQModel and llama.cpp load it as is);
  // only per-layer widths need slimtune's "slimtune_layer_shapes".
  const first = layerShapes[0]!;
  const uniform = layerShapes.every((l) => l.numHeads === first.numHeads && l.numKvHeads === first.numKvHeads && l.intermediateSize === first.intermediateSize) && first.numHeads > 0 && first.intermediateSize > 0;
  const prunedConfig: LlamaConfig = uniform
    ? { ...config, numHeads: first.numHeads, numKvHeads: first.numKvHeads, intermediateSize: first.intermediateSize }
    : { ...config, layerShapes };
  if (uniform) delete prunedConfig.layerShapes;
  const pruned = new LlamaModel(prunedConfig, weights, model.sourceDir);
  const blocks = (m: LlamaModel) => [...m.weights].filter(([n]) => n.startsWith("model.layers.")).reduce((s, [, w]) => s + w.data.length, 0);
  return {
    model: pruned,
    report: {
      parametersBefore: model.parameterCount,
      parametersAfter: pruned.parameterCount,
      blockParametersBefore: blocks(model),
      blockParametersAfter: blocks(pruned),
      layers: report,
    },
  };
}

function checkKeep(config: LlamaConfig, i: number, k: LayerKeep): void {
  const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
  const fail = (why: string): never => {
    throw new SlimtuneError("E_ARG", `pruning plan for layer ${i}: ${why}`);
  };
  const distinct = (xs: number[], n: number, what: string) => {
    if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isInteger(x) || x < 0 || x >= n)) fail(`${what} must be distinct indices below ${n}`);
  };
  distinct(k.heads, H, "heads");
  distinct(k.kvHeads, KV, "key/value heads");
  distinct(k.channels, F, "channels");
  if ((k.heads.length === 0) !== (k.kvHeads.length === 0) || (k.kvHeads.length > 0 && k.heads.length % k.kvHeads.length !== 0)) {
    fail(`${k.heads.length} query heads cannot be shared equally by ${k.kvHeads.length} key/value heads (GQA needs equal groups)`);
  }
  const rep = headsPerKvGroup(config, i);
  const per = k.kvHeads.length > 0 ? k.heads.length / k.kvHeads.length : 0;
  k.heads.forEach((h, j) => {
    const group = k.kvHeads[Math.floor(j / per)]!;
    if (Math.floor(h / rep) !== group) fail(`head ${h} reads key/value head ${Math.floor(h / rep)}, but it is listed in the block of key/value head ${group}`);
  });
}

function selectRows(weights: Map<string, HostParam>, path: string, rows: number[]): void {
  for (const suffix of ["weight", "bias"]) {
    const w = weights.get(`${path}.${suffix}`);
    if (!w) continue;
    const K = w.shape.length === 2 ? w.shape[1]! : 1;
    const out = new Float32Array(rows.length * K);
    rows.forEach((r, i) => out.set(w.data.subarray(r * K, (r + 1) * K), i * K));
    weights.set(`${path}.${suffix}`, { data: out, shape: w.shape.length === 2 ? [rows.length, K] : [rows.length] });
  }
}

function selectCols(weights: Map<string, HostParam>, path: string, cols: number[]): void {
  const w = weights.get(`${path}.weight`)!;
  const [N, K] = w.shape as [number, number];
  const out = new Float32Array(N * cols.length);
  for (let n = 0; n < N; n++) cols.forEach((c, i) => (out[n * cols.length + i] = w.data[n * K + c]!));
  weights.set(`${path}.weight`, { data: out, shape: [N, cols.length] });
}

/**
 * The model with the groups that `keep` drops switched off in place of being cut out: the o_proj
 * columns of every removed head and the down_proj columns of every removed channel are zeroed (a
 * removed key/value group removes all the heads that read it). It computes exactly what the pruned
 * model computes, at the original widths: the check that surgery changes nothing else.
 */
export function maskStructure(model: LlamaModel, keep: readonly LayerKeep[]): LlamaModel {
  const config = model.config;
  const D = config.headDim;
  const weights = new Map(model.weights);
  const zeroCols = (path: string, cols: number[]) => {
    const w = weights.get(`${path}.weight`)!;
    const [N, K] = w.shape as [number, number];
    const data = Float32Array.from(w.data);
    for (let n = 0; n < N; n++) for (const c of cols) data[n * K + c] = 0;
    weights.set(`${path}.weight`, { data, shape: w.shape });
  };
  keep.forEach((k, i) => {
    checkKeep(config, i, k);
    const p = layerPrefix(i);
    const { numHeads: H, intermediateSize: F } = layerShape(config, i);
    const heads = new Set(k.heads);
    const channels = new Set(k.channels);
    if (H > 0) zeroCols(`${p}.self_attn.o_proj`, [...Array(H).keys()].filter((h) => !heads.has(h)).flatMap((h) => Array.from({ length: D }, (_, d) => h * D + d)));
    if (F > 0) zeroCols(`${p}.mlp.down_proj`, [...Array(F).keys()].filter((j) => !channels.has(j)));
  });
  return new LlamaModel(config, weights, model.sourceDir);
}
