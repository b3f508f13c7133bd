// Ratio schedules: which groups each layer keeps, given group scores and a target ratio.
//
// `ratio` is the fraction of the decoder blocks' linear parameters to remove, counted over every
// layer. Layers left alone by --keep-first / --keep-last (LLM-Pruner leaves the first and last
// layers untouched) lose nothing, so the layers that are pruned lose r' = ratio · P_all / P_pruned
// of their parameters, the same share in attention and in the MLP.
//
// - "layer": every pruned layer loses r' of its MLP channels (the lowest scores of that layer) and
//   the attention structure nearest to r' of its attention parameters. Under GQA that structure is
//   g key/value groups with r heads each (every group must stay equally wide); the (g, r) pair whose
//   size is nearest to the target wins, and then the best g groups and the best r heads in each.
// - "global": one ranking across the pruned layers per kind: MLP channels against MLP channels and
//   whole key/value groups against key/value groups; the lowest go until r' of each kind's
//   parameters is removed.
//
// Every layer keeps at least one key/value group and one channel block unless `allowEmptyLayers`;
// kept channel counts are rounded to a multiple of `channelMultiple` (GPTQ packs 3-bit codes in
// 32-column words, so 32 keeps a pruned model quantizable at every width).

import { type LlamaConfig, layerShape } from "../arch/llama/config.js";
import { headsPerKvGroup } from "../arch/llama/groups.js";
import { SlimtuneError } from "../core/errors.js";
import { type LayerScores, kvGroupScore } from "./importance.js";
import type { LayerKeep } from "./surgery.js";

export const schedules = ["layer", "global"] as const;
export type Schedule = (typeof schedules)[number];

export interface PlanOptions {
  ratio: number;
  schedule: Schedule;
  keepFirst: number;
  keepLast: number;
  /** Kept MLP channels per layer are a multiple of this (layers whose width is not are exempt). */
  channelMultiple: number;
  /** Let a layer lose every head or every channel (its sub-block disappears). */
  allowEmptyLayers: boolean;
}

export const defaultPlanOptions: Omit<PlanOptions, "ratio"> = { schedule: "layer", keepFirst: 0, keepLast: 0, channelMultiple: 32, allowEmptyLayers: false };

export interface PrunePlan {
  keep: LayerKeep[];
  /** Share of each pruned layer's parameters the schedule aimed to remove (r'). */
  layerRatio: number;
  /** Layers the schedule pruned. */
  prunedLayers: number[];
}

/** Linear parameters (weights and the biases that go with removable rows) of a layer of these widths. */
function attentionParams(config: LlamaConfig, heads: number, kvHeads: number): number {
  const { hiddenSize: C, headDim: D } = config;
  const bias = config.attentionBias ? (heads + 2 * kvHeads) * D : 0;
  return (2 * heads + 2 * kvHeads) * D * C + bias + (heads > 0 && config.outputBias ? C : 0);
}
function mlpParams(config: LlamaConfig, channels: number): number {
  const C = config.hiddenSize;
  return 3 * channels * C + (config.mlpBias ? 2 * channels + (channels > 0 ? C : 0) : 0);
}
function layerParams(config: LlamaConfig, i: number): number {
  const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
  return attentionParams(config, H, KV) + mlpParams(config, F);
}

/** Checks `o` against the model and returns r', the share each pruned layer must lose. */
export function checkPlanOptions(config: LlamaConfig, o: PlanOptions): number {
  if (!(o.ratio > 0 && o.ratio < 1)) throw new SlimtuneError("E_ARG", `--ratio ${o.ratio} must lie strictly between 0 and 1, e.g. --ratio 0.2 to remove 20 % of the decoder blocks' parameters`);
  const L = config.numLayers;
  for (const [flag, v] of [["--keep-first", o.keepFirst], ["--keep-last", o.keepLast]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) throw new SlimtuneError("E_ARG", `${flag} ${v} must be a non-negative integer`);
  }
  if (o.keepFirst + o.keepLast >= L) {
    throw new SlimtuneError("E_ARG", `--keep-first ${o.keepFirst} + --keep-last ${o.keepLast} leave none of the ${L} layers to prune; keep fewer than ${L} layers in total`);
  }
  if (!(Number.isInteger(o.channelMultiple) && o.channelMultiple >= 1)) throw new SlimtuneError("E_ARG", `--channel-multiple ${o.channelMultiple} must be a positive integer (1: no rounding)`);
  if (!(schedules as readonly string[]).includes(o.schedule)) throw new SlimtuneError("E_ARG", `--schedule "${o.schedule}" is unknown; choose ${schedules.join(" or ")}`);
  const pruned = prunedLayers(config, o);
  let all = 0;
  for (let i = 0; i < L; i++) all += layerParams(config, i);
  const prunable = pruned.reduce((s, i) => s + layerParams(config, i), 0);
  const r = (o.ratio * all) / prunable;
  if (r >= 1) {
    throw new SlimtuneError(
      "E_ARG",
      `--ratio ${o.ratio} would remove ${(100 * r).toFixed(0)} % of each of the ${pruned.length} pruned layers (the other ${L - pruned.length} are kept whole); the most these layers can give is --ratio ${((0.95 * prunable) / all).toFixed(2)} — lower --ratio, --keep-first or --keep-last`,
    );
  }
  return r;
}

const prunedLayers = (config: LlamaConfig, o: PlanOptions) => Array.from({ length: config.numLayers - o.keepFirst - o.keepLast }, (_, j) => o.keepFirst + j);

/** What each layer keeps under `opts`, ranked by `scores`. */
export function planPruning(config: LlamaConfig, scores: readonly LayerScores[], opts: PlanOptions): PrunePlan {
  const r = checkPlanOptions(config, opts);
  const pruned = prunedLayers(config, opts);
  const keep: LayerKeep[] = Array.from({ length: config.numLayers }, (_, i) => fullKeep(config, i));
  if (opts.schedule === "layer") {
    for (const i of pruned) {
      const { intermediateSize: F, numKvHeads: KV } = layerShape(config, i);
      keep[i] = { ...attentionKeep(config, i, scores[i]!, r, opts), channels: topChannels(scores[i]!.channels, keptChannelCount(F, (1 - r) * F, i, opts, r)) };
      if (KV === 0) keep[i]!.heads = [];
    }
  } else {
    globalPlan(config, scores, pruned, r, opts, keep);
  }
  return { keep, layerRatio: r, prunedLayers: pruned };
}

function fullKeep(config: LlamaConfig, i: number): LayerKeep {
  const { numHeads: H, numKvHeads: KV, intermediateSize: F } = layerShape(config, i);
  const range = (n: number) => Array.from({ length: n }, (_, j) => j);
  return { heads: range(H), kvHeads: range(KV), channels: range(F) };
}

const multipleFor = (F: number, m: number) => (F % m === 0 ? m : 1);

/** Kept channels of a layer of width F that should keep about `want`, rounded to the layer's multiple. */
function keptChannelCount(F: number, want: number, layer: number, opts: PlanOptions, r: number): number {
  if (F === 0) return 0;
  const m = multipleFor(F, opts.channelMultiple);
  const kept = Math.min(F, Math.round(want / m) * m);
  if (kept === 0 && !opts.allowEmptyLayers) {
    throw new SlimtuneError(
      "E_ARG",
      `removing ${(100 * r).toFixed(0)} % of layer ${layer} would leave none of its ${F} MLP channels (kept counts are multiples of ${m}); lower --ratio, --channel-multiple or --keep-first/--keep-last, or pass --allow-empty-layers to let a layer lose its MLP`,
    );
  }
  return kept;
}

/** Indices of the `n` highest scores, ascending. */
function topChannels(scores: Float64Array, n: number): number[] {
  return [...scores.keys()].sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, n).sort((a, b) => a - b);
}

/** The (g groups, r heads per group) attention structure nearest to keeping (1 − ratio) of the layer's attention. */
function attentionKeep(config: LlamaConfig, i: number, s: LayerScores, ratio: number, opts: PlanOptions): Omit<LayerKeep, "channels"> {
  const { numHeads: H, numKvHeads: KV } = layerShape(config, i);
  if (KV === 0) return { heads: [], kvHeads: [] };
  const rep = headsPerKvGroup(config, i);
  const target = (1 - ratio) * attentionParams(config, H, KV);
  let best: { dist: number; size: number; score: number; pick: number[][] } | null = null;
  for (let g = 0; g <= KV; g++) {
    for (let r = g === 0 ? rep : 1; r <= rep; r++) {
      const size = g === 0 ? 0 : attentionParams(config, g * r, g);
      const dist = Math.abs(size - target);
      // Within each group keep its r best heads; then keep the g groups whose own rows plus those heads score highest.
      const groups = Array.from({ length: KV }, (_, k) => {
        const heads = Array.from({ length: rep }, (_, j) => k * rep + j)
          .sort((a, b) => s.heads[b]! - s.heads[a]! || a - b)
          .slice(0, r)
          .sort((a, b) => a - b);
        return { k, heads, score: s.kvOwn[k]! + heads.reduce((t, h) => t + s.heads[h]!, 0) };
      });
      const chosen = groups.sort((a, b) => b.score - a.score || a.k - b.k).slice(0, g).sort((a, b) => a.k - b.k);
      const score = chosen.reduce((t, c) => t + c.score, 0);
      // Nearest to the target first; at equal distance keep more, then the higher total score.
      const better = !best || dist < best.dist || (dist === best.dist && (size > best.size || (size === best.size && score > best.score)));
      if (better) best = { dist, size, score, pick: chosen.map((c) => [c.k, ...c.heads]) };
    }
  }
  if (best!.size === 0 && !opts.allowEmptyLayers) {
    throw new SlimtuneError(
      "E_ARG",
      `removing ${(100 * ratio).toFixed(0)} % of layer ${i} would leave none of its ${H} attention heads (the nearest structure is no key/value group at all); lower --ratio or --keep-first/--keep-last, or pass --allow-empty-layers to let a layer lose its attention`,
    );
  }
  return { kvHeads: best!.pick.map((p) => p[0]!), heads: best!.pick.flatMap((p) => p.slice(1)) };
}

interface Unit {
  layer: number;
  index: number;
  score: number;
  params: number;
}

/** Removes the lowest-scoring units until `target` parameters are gone, never taking a layer below `minKeep` units. */
function globalRemove(units: Unit[], target: number, minKeep: (layer: number) => number, count: (layer: number) => number): Set<Unit> {
  const left = new Map<number, number>();
  const removed = new Set<Unit>();
  let gone = 0;
  for (const u of [...units].sort((a, b) => a.score - b.score || a.layer - b.layer || a.index - b.index)) {
    if (gone + u.params / 2 > target) break;
    const n = left.get(u.layer) ?? count(u.layer);
    if (n <= minKeep(u.layer)) continue;
    left.set(u.layer, n - 1);
    removed.add(u);
    gone += u.params;
  }
  return removed;
}

function globalPlan(config: LlamaConfig, scores: readonly LayerScores[], pruned: number[], r: number, opts: PlanOptions, keep: LayerKeep[]): void {
  const C = config.hiddenSize;
  // MLP channels, ranked across the pruned layers.
  const channelUnits: Unit[] = pruned.flatMap((i) => [...scores[i]!.channels].map((score, index) => ({ layer: i, index, score, params: mlpParams(config, 1) - (config.mlpBias ? C : 0) })));
  const totalChannels = pruned.reduce((s, i) => s + mlpParams(config, layerShape(config, i).intermediateSize), 0);
  const F = (i: number) => layerShape(config, i).intermediateSize;
  const goneChannels = globalRemove(channelUnits, r * totalChannels, (i) => (opts.allowEmptyLayers ? 0 : multipleFor(F(i), opts.channelMultiple)), F);
  for (const i of pruned) {
    const removedHere = [...goneChannels].filter((u) => u.layer === i).length;
    const kept = keptChannelCount(F(i), F(i) - removedHere, i, opts, removedHere / Math.max(1, F(i)));
    keep[i]!.channels = topChannels(scores[i]!.channels, kept);
  }
  // Whole key/value groups, ranked across the pruned layers.
  const groupUnits: Unit[] = pruned.flatMap((i) => {
    const { numKvHeads: KV } = layerShape(config, i);
    const rep = headsPerKvGroup(config, i);
    return Array.from({ length: KV }, (_, g) => ({ layer: i, index: g, score: kvGroupScore(config, i, scores[i]!, g), params: attentionParams(config, rep, 1) - (config.outputBias ? C : 0) }));
  });
  const totalAttention = pruned.reduce((s, i) => s + attentionParams(config, layerShape(config, i).numHeads, layerShape(config, i).numKvHeads), 0);
  const KVof = (i: number) => layerShape(config, i).numKvHeads;
  const goneGroups = globalRemove(groupUnits, r * totalAttention, (i) => (opts.allowEmptyLayers || KVof(i) === 0 ? 0 : 1), KVof);
  for (const i of pruned) {
    const rep = headsPerKvGroup(config, i);
    const gone = new Set([...goneGroups].filter((u) => u.layer === i).map((u) => u.index));
    const kvHeads = Array.from({ length: KVof(i) }, (_, g) => g).filter((g) => !gone.has(g));
    keep[i]!.kvHeads = kvHeads;
    keep[i]!.heads = kvHeads.flatMap((g) => Array.from({ length: rep }, (_, j) => g * rep + j));
  }
}
