// The GPT-2 decoder as a graph (GPT2LMHeadModel's math, transformers' tensor names, Conv1D weights
// held [out, in]): token embeddings + learned position embeddings → N × (LayerNorm → attention from
// the fused c_attn → c_proj → residual → LayerNorm → c_fc → tanh GELU → c_proj → residual) →
// LayerNorm. No RoPE. The LLaMA graphs (models/llama/graph.ts, kv-graph.ts, block.ts) branch here
// for a gpt2 config; the head (tied to wte, or lm_head) is theirs.

import { type LayerShape, type LlamaConfig, layerShape } from "../../arch/llama/config.js";
import { GPT2_LN_F, GPT2_WPE, GPT2_WTE, gpt2LayerPrefix, gpt2LinearPaths } from "../../arch/gpt2/names.js";
import type { ParamSource } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { type Value, add, causalAttention, gather, reshape, slice } from "../../engine/index.js";
import { type LayerNormFn, geluTanh, layerNorm } from "./layers.js";

/** Attention of layer i: q [N, H·D], k and v [N, H·D] straight from c_attn → [N, H·D] (as models/llama's LayerAttention). */
export type Gpt2Attention = (layer: number, q: Value, k: Value, v: Value, widths: LayerShape) => Value;

export interface Gpt2Inputs {
  /** Token ids, [B, T] int64. */
  ids: Value;
  keyMask?: Value;
  checkpoint?: boolean;
  /** Packed rows: each token's position within its example [B, T] int64, and the block-diagonal causal mask. */
  packed?: { positions: Value; exampleMask: Value };
}

/**
 * Refuses sequences longer than the learned position table: GPT-2 has no position past n_positions
 * (--allow-long-context cannot extend it, unlike RoPE).
 */
export function assertGpt2Positions(config: LlamaConfig, length: number): void {
  if (length > config.maxPositionEmbeddings) {
    throw new SlimtuneError(
      "E_ARG",
      `a sequence of ${length} tokens is longer than this gpt2 model's n_positions (${config.maxPositionEmbeddings}): GPT-2 learns one embedding per position and has none past that, so --allow-long-context cannot extend it; use ${config.maxPositionEmbeddings} tokens or fewer`,
    );
  }
}

/** Final normalised hidden states [B·T, C] of the full-sequence graphs (training, scoring). */
export function gpt2Hidden(config: LlamaConfig, p: ParamSource, inputs: Gpt2Inputs): Value {
  const g = p.graph;
  const [B, T] = inputs.ids.shape as [number, number];
  assertGpt2Positions(config, T);
  const D = config.headDim;
  // causalAttention rotates q and k; GPT-2 has no RoPE, so its tables are the identity (cos 1, sin 0: exact).
  const rot = { cos: g.constant(new Float32Array(T * D).fill(1), [T, D]), sin: g.constant(new Float32Array(T * D), [T, D]) };
  const attend: Gpt2Attention = (_i, q, k, v, widths) =>
    causalAttention(q, k, v, { batch: B, seq: T, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: D }, rot, inputs.keyMask, inputs.packed?.exampleMask);
  const positions = inputs.packed?.positions ?? g.constant(BigInt64Array.from({ length: T }, (_, t) => BigInt(t)), [T], "int64");
  return gpt2Blocks(config, p, inputs.ids, positions, attend, { checkpoint: inputs.checkpoint ?? false });
}

/**
 * wte[ids] + wpe[positions] → the blocks → ln_f: hidden states [B·T, C] for ids [B, T].
 * `positions` is [T] (every row from 0) or [B, T] (packed rows, or the KV-cache graph's position_ids).
 */
export function gpt2Blocks(config: LlamaConfig, p: ParamSource, ids: Value, positions: Value, attend: Gpt2Attention, opts: { checkpoint?: boolean; norm?: LayerNormFn } = {}): Value {
  const norm = opts.norm ?? layerNorm;
  const g = p.graph;
  const [B, T] = ids.shape as [number, number];
  const C = config.hiddenSize;
  // A quantized table (ParamSource.embed) when the export made one, else the float rows.
  const tokens = p.embed ? p.embed(ids) : gather(p.tensor(GPT2_WTE), ids); // (B, T, C)
  const places = gather(p.tensor(GPT2_WPE), positions); // (T, C) or (B, T, C)
  let x = reshape(add(tokens, places), [g.dims.mul(B, T), C]);
  for (let i = 0; i < config.numLayers; i++) {
    x = opts.checkpoint ? g.checkpointed(x, (xi) => gpt2Layer(config, p, xi, i, attend, norm)) : gpt2Layer(config, p, x, i, attend, norm);
  }
  return norm(x, p.tensor(`${GPT2_LN_F}.weight`), p.tensor(`${GPT2_LN_F}.bias`), config.rmsNormEps);
}

/** Block i on the residual stream x [N, C]: x + c_proj(attn(c_attn(ln_1(x)))), then + c_proj(gelu(c_fc(ln_2(·)))). */
export function gpt2Layer(config: LlamaConfig, p: ParamSource, x: Value, i: number, attend: Gpt2Attention, layerNormOf: LayerNormFn = layerNorm): Value {
  const pre = gpt2LayerPrefix(i);
  const paths = gpt2LinearPaths(i);
  const C = config.hiddenSize;
  const eps = config.rmsNormEps;
  const norm = (name: string, h: Value) => layerNormOf(h, p.tensor(`${pre}.${name}.weight`), p.tensor(`${pre}.${name}.bias`), eps);
  const qkv = p.linear(paths.attn, norm("ln_1", x)); // (N, 3C): queries, keys, values
  const heads = attend(i, slice(qkv, 1, 0, C), slice(qkv, 1, C, 2 * C), slice(qkv, 1, 2 * C, 3 * C), layerShape(config, i));
  x = add(x, p.linear(paths.attnOut, heads));
  return add(x, p.linear(paths.mlpOut, geluTanh(p.linear(paths.fc, norm("ln_2", x)))));
}
