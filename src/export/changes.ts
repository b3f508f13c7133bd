// What an export does to a model's weights, tensor by tensor, gathered into groups of layers that
// underwent the same change (from the same kind of source to the same target), worded for the
// terminal and for --json, and — given text — measured as KL to the source model on a few windows,
// one group at a time and all together. An export that keeps what the model is records nothing.

import type { HostParam } from "../arch/params.js";
import { GraphCache } from "../engine/index.js";
import { klToReference } from "../eval/kl.js";
import { baseScoring } from "../models/base-scoring.js";
import { LlamaModel } from "../models/llama/model.js";
import type { LoadedBase } from "../models/load.js";
import type { QuantizedLinear } from "../quant/types.js";
import { dequantizedModel } from "./merged.js";

/** "widened": the same values in wider codes (3-bit codes in MatMulNBits' 4-bit fields), KL 0 by construction. */
export type ChangeKind = "re-rounded" | "upcast" | "quantized" | "codes kept, d/m rounded to f16" | "codes kept, scales rounded to f16" | "widened";

export interface TensorChange {
  /** HF tensor name, e.g. "model.layers.3.mlp.up_proj.weight". */
  tensor: string;
  /** The source, in words: "rtn 3-bit g64 asymmetric", "float". */
  from: string;
  /** The type written: "Q4_0", "F32", … */
  to: string;
  kind: ChangeKind;
  /** The values the file holds, in the source's layout, when the export was asked to keep them. */
  decoded?: Float32Array;
}

export interface ChangeGroup {
  from: string;
  to: string;
  kind: ChangeKind;
  /** Tensors in the group, compactly: "layers 0–5 q_proj, k_proj; lm_head". */
  tensors: string;
  count: number;
  /** Mean KL(source ‖ exported) per token with only this group changed, nats (when measured). */
  kl?: number;
}

/** The layer's grid in words, for reports: "3-bit g64 asymmetric act-order" (prefixed by the method when the model records one). */
export function layerWords(q: QuantizedLinear, method?: string): string {
  if (q.kind === "reallm") return "ReALLM";
  const order = q.kind === "rtn" && q.groupIndex ? " act-order" : "";
  const sym = q.kind === "nf4" ? "" : q.zeros.every((z) => z === 1 << (q.spec.bits - 1)) ? " symmetric" : " asymmetric";
  const prefix = q.kind === "nf4" ? "nf4 " : method ? `${method} ` : "";
  return `${prefix}${q.spec.bits}-bit g${q.groupSize}${sym}${order}`;
}

export function groupChanges(changes: readonly TensorChange[]): ChangeGroup[] {
  const byKey = new Map<string, TensorChange[]>();
  for (const c of changes) {
    const key = `${c.from}\u0000${c.to}\u0000${c.kind}`;
    byKey.set(key, [...(byKey.get(key) ?? []), c]);
  }
  return [...byKey.values()].map((cs) => ({ from: cs[0]!.from, to: cs[0]!.to, kind: cs[0]!.kind, tensors: compactNames(cs.map((c) => c.tensor)), count: cs.length }));
}

/** "model.layers.{0..5}.self_attn.q_proj.weight" → "layers 0–5 q_proj"; other tensors by their short name. */
export function compactNames(names: readonly string[]): string {
  const layersOf = new Map<string, number[]>();
  const others: string[] = [];
  for (const n of names) {
    // GPT-2's layers keep their block's name: attn.c_proj and mlp.c_proj are different layers.
    const m = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.weight$/.exec(n) ?? /^transformer\.h\.(\d+)\.((?:attn|mlp)\.\w+)\.weight$/.exec(n);
    if (m) layersOf.set(m[2]!, [...(layersOf.get(m[2]!) ?? []), Number(m[1])]);
    else others.push(n.replace(/^(model|transformer)\./, "").replace(/\.weight$/, ""));
  }
  // Projections sharing the same layer set are listed together.
  const bySet = new Map<string, string[]>();
  for (const [proj, layers] of layersOf) {
    const key = ranges(layers);
    bySet.set(key, [...(bySet.get(key) ?? []), proj]);
  }
  return [...[...bySet].map(([set, projs]) => `layers ${set} ${projs.join(", ")}`), ...others].join("; ");
}

function ranges(values: number[]): string {
  const v = [...new Set(values)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < v.length; ) {
    let j = i;
    while (j + 1 < v.length && v[j + 1] === v[j]! + 1) j++;
    parts.push(i === j ? `${v[i]}` : `${v[i]}–${v[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

export interface MeasuredChanges {
  groups: ChangeGroup[];
  /** KL with every change at once (nats per token). */
  totalKl: number;
  tokens: number;
}

/**
 * KL(source ‖ exported) on `tokens` (a few windows of `ctx`): per group with only that group's
 * tensors replaced by what the file holds, then with all of them. The source is computed in
 * float (a quantized source dequantized), so an exact export measures 0.
 */
export async function measureChanges(source: LoadedBase, changes: readonly TensorChange[], tokens: Int32Array, ctx: number): Promise<MeasuredChanges> {
  const reference = source.kind === "float" ? source.model : dequantizedModel(source.model);
  const refScoring = baseScoring({ kind: "float", model: reference });
  const refCache = new GraphCache();
  const kl = async (subset: readonly TensorChange[]) => {
    const weights = new Map<string, HostParam>(reference.weights);
    for (const c of subset) {
      const w = reference.weights.get(c.tensor);
      // Tensors the file holds at another shape (deci's zero channels) are structure, not a change.
      if (!w || !c.decoded || c.decoded.length !== w.data.length) continue;
      weights.set(c.tensor, { data: c.decoded, shape: w.shape });
    }
    const model = new LlamaModel(reference.config, weights, reference.sourceDir);
    const r = await klToReference(baseScoring({ kind: "float", model }), refScoring, { model: new GraphCache(), reference: refCache }, tokens, { ctx });
    return r.meanKl;
  };
  const groups = groupChanges(changes);
  for (const g of groups) g.kl = await kl(changes.filter((c) => c.from === g.from && c.to === g.to && c.kind === g.kind));
  return { groups, totalKl: await kl(changes), tokens: tokens.length };
}

/** One line per group for the terminal. */
export function describeChanges(groups: readonly ChangeGroup[]): string[] {
  return groups.map((g) => `  ${g.kind} ${g.from} → ${g.to}: ${g.tensors} (${g.count} tensors)${g.kl === undefined ? "" : `, KL to the source ${g.kl.toExponential(3)} nats/token`}`);
}
