// Physical removal: fold evaluation-mode gates into the weights, then drop the structure they
// switched off — MLP channels (gate/up rows with the down column), attention heads (q rows with
// their o columns), key/value heads only with their whole query group — into a smaller model
// whose per-layer widths go into its config.

import { type LlamaConfig, layerShape } from "../../formats/hf-config.js";
import { LlamaModel } from "../../models/llama/model.js";
import type { HostParam } from "../../models/llama/params.js";

/** Evaluation-mode gate values of one layer (1 where a side is not gated). */
export interface LayerGates {
  row: Float32Array;
  col: Float32Array;
}

export interface PruneReport {
  parametersBefore: number;
  parametersAfter: number;
  /** Parameters of the decoder blocks alone (what gates can remove), before and after. */
  blockParametersBefore: number;
  blockParametersAfter: number;
  layers: Array<{ heads: [number, number]; kvHeads: [number, number]; channels: [number, number] }>;
}

/** W ← diag(z_r)·W·diag(z_c), b ← z_r ⊙ b for every gated layer (in place on copies). */
export function foldGates(weights: Map<string, HostParam>, gates: ReadonlyMap<string, LayerGates>): void {
  for (const [path, z] of gates) {
    const w = weights.get(`${path}.weight`)!;
    const [N, K] = w.shape as [number, number];
    const data = Float32Array.from(w.data);
    for (let n = 0; n < N; n++) {
      const r = z.row[n]!;
      for (let k = 0; k < K; k++) data[n * K + k]! *= r * z.col[k]!;
    }
    weights.set(`${path}.weight`, { data, shape: w.shape });
    const b = weights.get(`${path}.bias`);
    if (b) weights.set(`${path}.bias`, { data: b.data.map((v, n) => v * z.row[n]!), shape: b.shape });
  }
}

export function pruneWithGates(model: LlamaModel, gates: ReadonlyMap<string, LayerGates>): { model: LlamaModel; report: PruneReport } {
  const config = model.config;
  const D = config.headDim;
  const weights = new Map(model.weights);
  foldGates(weights, gates);
  const ones = (n: number) => new Float32Array(n).fill(1);
  const side = (path: string, which: "row" | "col", n: number) => gates.get(path)?.[which] ?? ones(n);

  const layerShapes: LlamaConfig["layerShapes"] = [];
  const report: PruneReport["layers"] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    // MLP channel j contributes nothing once any of its three gates is 0 (silu(0) = 0).
    const gateRow = side(`${p}.mlp.gate_proj`, "row", F);
    const upRow = side(`${p}.mlp.up_proj`, "row", F);
    const downCol = side(`${p}.mlp.down_proj`, "col", F);
    const channels = [...Array(F).keys()].filter((j) => gateRow[j] !== 0 && upRow[j] !== 0 && downCol[j] !== 0);

    // Head h contributes nothing once its o_proj columns, or its key/value head's v rows, are all 0.
    const oCol = side(`${p}.self_attn.o_proj`, "col", H * D);
    const vRow = side(`${p}.self_attn.v_proj`, "row", KV * D);
    const rep = H / KV;
    const allZero = (z: Float32Array, from: number) => z.subarray(from, from + D).every((v) => v === 0);
    const live = (h: number) => !allZero(oCol, h * D) && !allZero(vRow, Math.floor(h / rep) * D);
    const groups = [...Array(KV).keys()].map((g) => [...Array(rep).keys()].map((r) => g * rep + r));
    const keptGroups = groups.filter((heads) => heads.some(live));
    // GQA needs equal groups: keep as many heads per group as the liveliest group, padding with
    // switched-off heads (their o columns are zero, so they still add nothing).
    const newRep = Math.max(0, ...keptGroups.map((heads) => heads.filter(live).length));
    const keptHeads = keptGroups.flatMap((heads) => [...heads.filter(live), ...heads.filter((h) => !live(h))].slice(0, newRep));
    const keptKv = keptGroups.map((heads) => Math.floor(heads[0]! / rep));

    const rows = (units: number[], width: number) => units.flatMap((u) => [...Array(width).keys()].map((d) => u * width + d));
    const qRows = rows(keptHeads, D);
    const kvRows = rows(keptKv, D);
    selectRows(weights, `${p}.self_attn.q_proj`, qRows);
    selectRows(weights, `${p}.self_attn.k_proj`, kvRows);
    selectRows(weights, `${p}.self_attn.v_proj`, kvRows);
    selectCols(weights, `${p}.self_attn.o_proj`, qRows);
    selectRows(weights, `${p}.mlp.gate_proj`, channels);
    selectRows(weights, `${p}.mlp.up_proj`, channels);
    selectCols(weights, `${p}.mlp.down_proj`, channels);
    layerShapes.push({ numHeads: keptHeads.length, numKvHeads: keptKv.length, intermediateSize: channels.length });
    report.push({ heads: [H, keptHeads.length], kvHeads: [KV, keptKv.length], channels: [F, channels.length] });
  }
  const pruned = new LlamaModel({ ...config, layerShapes }, weights, model.sourceDir);
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
