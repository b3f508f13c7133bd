// FineGates' removal: fold evaluation-mode gates into the weights, decide which MLP channels,
// attention heads and key/value groups the gates switched off, and hand that plan to the shared
// surgery (prune/surgery.ts), which cuts them out into a smaller model.

import { layerShape } from "../../arch/llama/config.js";
import { layerPrefix } from "../../arch/llama/names.js";
import type { HostParam } from "../../arch/params.js";
import { LlamaModel } from "../../models/llama/model.js";
import { type LayerKeep, type PruneReport, removeStructure } from "../../prune/surgery.js";

/** Evaluation-mode gate values of one layer (1 where a side is not gated). */
export interface LayerGates {
  row: Float32Array;
  col: Float32Array;
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

/** What each layer keeps once gates at exactly 0 are removed. */
export function keepFromGates(model: LlamaModel, gates: ReadonlyMap<string, LayerGates>): LayerKeep[] {
  const config = model.config;
  const D = config.headDim;
  const ones = (n: number) => new Float32Array(n).fill(1);
  const side = (path: string, which: "row" | "col", n: number) => gates.get(path)?.[which] ?? ones(n);
  return Array.from({ length: config.numLayers }, (_, i) => {
    const p = layerPrefix(i);
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
    // MLP channel j contributes nothing once any of its three gates is 0 (silu(0) = 0).
    const gateRow = side(`${p}.mlp.gate_proj`, "row", F);
    const upRow = side(`${p}.mlp.up_proj`, "row", F);
    const downCol = side(`${p}.mlp.down_proj`, "col", F);
    const channels = [...Array(F).keys()].filter((j) => gateRow[j] !== 0 && upRow[j] !== 0 && downCol[j] !== 0);

    // Head h contributes nothing once its o_proj columns, or its key/value head's v rows, are all 0.
    const oCol = side(`${p}.self_attn.o_proj`, "col", H * D);
    const vRow = side(`${p}.self_attn.v_proj`, "row", KV * D);
    const rep = KV > 0 ? H / KV : 0;
    const allZero = (z: Float32Array, from: number) => z.subarray(from, from + D).every((v) => v === 0);
    const live = (h: number) => !allZero(oCol, h * D) && !allZero(vRow, Math.floor(h / rep) * D);
    const groups = [...Array(KV).keys()].map((g) => [...Array(rep).keys()].map((r) => g * rep + r));
    const keptGroups = groups.filter((heads) => heads.some(live));
    // GQA needs equal groups: keep as many heads per group as the liveliest group, padding with
    // switched-off heads (their o columns are zero, so they still add nothing).
    const newRep = Math.max(0, ...keptGroups.map((heads) => heads.filter(live).length));
    const heads = keptGroups.flatMap((hs) => [...hs.filter(live), ...hs.filter((h) => !live(h))].slice(0, newRep));
    const kvHeads = keptGroups.map((hs) => Math.floor(hs[0]! / rep));
    return { heads, kvHeads, channels };
  });
}

/** Folds `gates` into a copy of the weights and removes whatever they switched off. */
export function pruneWithGates(model: LlamaModel, gates: ReadonlyMap<string, LayerGates>): { model: LlamaModel; report: PruneReport } {
  const weights = new Map(model.weights);
  foldGates(weights, gates);
  return removeStructure(new LlamaModel(model.config, weights, model.sourceDir), keepFromGates(model, gates));
}
