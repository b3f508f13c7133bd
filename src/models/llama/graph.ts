// The LLaMA-family decoder as a graph (LlamaForCausalLM's math, transformers' tensor names):
// embeddings → N × (RMSNorm → GQA attention with RoPE → residual → RMSNorm → SwiGLU → residual)
// → RMSNorm → tied or separate LM head. The layers are shared by the full-sequence graphs (training,
// scoring) and the key/value-cache graphs of generation (kv-graph.ts); only attention differs.

import { type Value, add, causalAttention, gather, gemm, reshape, rmsNorm, ropeTables, siluGate, slice } from "../../engine/index.js";
import type { ParamSource } from "../../arch/params.js";
import { ropeInvFreq } from "../../arch/llama/rope.js";
import { type LayerShape, type LlamaConfig, isGpt2, layerShape } from "../../arch/llama/config.js";
import { GPT2_WTE } from "../../arch/gpt2/names.js";
import { gpt2Hidden, gpt2Layer } from "../gpt2/graph.js";
import { gemma3SequenceAttention } from "./gemma3-attention.js";
import { gemma3Blocks, gemma3Layer } from "./gemma3-layer.js";
import { sequenceWindowMasks } from "./window-mask.js";

export interface DecoderInputs {
  /** Token ids, [B, T] int64. */
  ids: Value;
  /** Additive key mask [B, 1, 1, T]: 0 for real tokens, a large negative for padding. */
  keyMask?: Value;
  /** Mark each decoder layer for recomputation in the backward (activation checkpointing). */
  checkpoint?: boolean;
  /**
   * Packed rows: each token's position within its own example, [B, T] int64 (RoPE angles), and
   * the block-diagonal causal mask [B, 1, T, T] that keeps each example to itself. Both or neither.
   */
  packed?: { positions: Value; exampleMask: Value };
}

/** Final normalised hidden states, [B·T, C]. */
export function llamaHidden(config: LlamaConfig, p: ParamSource, inputs: DecoderInputs): Value {
  if (isGpt2(config)) return gpt2Hidden(config, p, inputs); // GPT-2's own block: models/gpt2
  const g = p.graph;
  const [B, T] = inputs.ids.shape as [number, number];
  if (config.gemma3) {
    const attend = gemma3SequenceAttention(config, g, { batch: B, seq: T, ...(inputs.keyMask ? { keyMask: inputs.keyMask } : {}), ...(inputs.packed ? { packed: inputs.packed } : {}) });
    return llamaBlocks(config, p, inputs.ids, attend, { checkpoint: inputs.checkpoint ?? false });
  }
  const tables = ropeTables(T, config.headDim, config.ropeTheta, ropeInvFreq(config));
  const table = { cos: g.constant(tables.cos, [T, config.headDim]), sin: g.constant(tables.sin, [T, config.headDim]) };
  const packed = inputs.packed;
  // Packed rows read each token's angles at its own position: [B, 1, T, D] broadcasts over heads.
  const atPositions = (t: Value) => reshape(gather(t, packed!.positions), [B, 1, T, config.headDim]);
  const rot = packed ? { cos: atPositions(table.cos), sin: atPositions(table.sin) } : table;
  // The example mask of packed rows, with each layer's sliding window (if any) on top.
  const maskOf = sequenceWindowMasks(config, g, { batch: B, seq: T, ...(packed ? { exampleMask: packed.exampleMask } : {}) });
  const attend: LayerAttention = (i, q, k, v, widths) => {
    const shape = { batch: B, seq: T, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: config.headDim };
    return causalAttention(q, k, v, shape, rot, inputs.keyMask, maskOf(i, q.dtype));
  };
  return llamaBlocks(config, p, inputs.ids, attend, { checkpoint: inputs.checkpoint ?? false });
}

/**
 * Attention of layer i: q [B·T, H·D], k and v [B·T, KV·D] (after the projections, before RoPE) →
 * [B·T, H·D]. The full-sequence graphs use causal attention over the window; the generation graphs
 * attend over a key/value cache.
 */
export type LayerAttention = (layer: number, q: Value, k: Value, v: Value, widths: LayerShape) => Value;

/** RMSNorm as the graph computes it: rmsNorm (differentiable) or rmsNormFused (inference). */
export type NormFn = (x: Value, weight: Value, eps: number) => Value;

/** Embeddings → the decoder layers → the final RMSNorm: hidden states [B·T, C] for ids [B, T]. */
export function llamaBlocks(
  config: LlamaConfig,
  p: ParamSource,
  ids: Value,
  attend: LayerAttention,
  opts: { norm?: NormFn; checkpoint?: boolean } = {},
): Value {
  const g = p.graph;
  const norm = opts.norm ?? rmsNorm;
  if (config.gemma3) return gemma3Blocks(config, p, ids, attend, norm, opts.checkpoint ?? false);
  const [B, T] = ids.shape as [number, number];
  const C = config.hiddenSize;
  const rows = p.embed ? p.embed(ids) : gather(p.tensor("model.embed_tokens.weight"), ids);
  let x = reshape(rows, [g.dims.mul(B, T), C]); // (B·T, C)
  for (let i = 0; i < config.numLayers; i++) {
    x = opts.checkpoint ? g.checkpointed(x, (xi) => llamaLayer(config, p, xi, i, attend, norm)) : llamaLayer(config, p, x, i, attend, norm);
  }
  return norm(x, p.tensor("model.norm.weight"), config.rmsNormEps);
}

/** Decoder layer i on the residual stream x [B·T, C]: x + attn(norm(x)), then + mlp(norm(·)). */
export function llamaLayer(config: LlamaConfig, p: ParamSource, x: Value, i: number, attend: LayerAttention, norm: NormFn = rmsNorm): Value {
  const pre = `model.layers.${i}`;
  const widths = layerShape(config, i);
  if (config.fusedProjections) return fusedLayer(config, p, x, i, attend, norm);
  if (config.gemma3) return gemma3Layer(config, p, x, i, attend, norm);
  // A pruned layer may have lost every head or every MLP channel: its sub-block adds nothing.
  if (widths.numHeads > 0) {
    const h = norm(x, p.tensor(`${pre}.input_layernorm.weight`), config.rmsNormEps);
    let q = p.linear(`${pre}.self_attn.q_proj`, h);
    let k = p.linear(`${pre}.self_attn.k_proj`, h);
    if (config.qkNorm) {
      // qwen3: each head's query and key RMS-normalised over its D values, one weight shared by the heads.
      q = perHeadNorm(q, p.tensor(`${pre}.self_attn.q_norm.weight`), widths.numHeads, config, norm);
      k = perHeadNorm(k, p.tensor(`${pre}.self_attn.k_norm.weight`), widths.numKvHeads, config, norm);
    }
    const v = p.linear(`${pre}.self_attn.v_proj`, h);
    x = add(x, p.linear(`${pre}.self_attn.o_proj`, attend(i, q, k, v, widths))); // attention: (B·T, H·D)
  }
  if (widths.intermediateSize > 0) {
    const h2 = norm(x, p.tensor(`${pre}.post_attention_layernorm.weight`), config.rmsNormEps);
    const mlp = siluGate(p.linear(`${pre}.mlp.gate_proj`, h2), p.linear(`${pre}.mlp.up_proj`, h2));
    x = add(x, p.linear(`${pre}.mlp.down_proj`, mlp));
  }
  return x;
}

/** Layer i of a model whose q/k/v and gate/up are fused (phi3): the same block, the projections sliced from one product. */
function fusedLayer(config: LlamaConfig, p: ParamSource, x: Value, i: number, attend: LayerAttention, norm: NormFn): Value {
  const pre = `model.layers.${i}`;
  const widths = layerShape(config, i);
  const q = widths.numHeads * config.headDim;
  const kv = widths.numKvHeads * config.headDim;
  const h = norm(x, p.tensor(`${pre}.input_layernorm.weight`), config.rmsNormEps);
  const qkv = p.linear(`${pre}.self_attn.qkv_proj`, h); // (B·T, q + 2·kv): queries, keys, values
  const heads = attend(i, slice(qkv, 1, 0, q), slice(qkv, 1, q, q + kv), slice(qkv, 1, q + kv, q + 2 * kv), widths);
  x = add(x, p.linear(`${pre}.self_attn.o_proj`, heads));
  const F = widths.intermediateSize;
  const gateUp = p.linear(`${pre}.mlp.gate_up_proj`, norm(x, p.tensor(`${pre}.post_attention_layernorm.weight`), config.rmsNormEps)); // (B·T, 2F): gate, then up
  return add(x, p.linear(`${pre}.mlp.down_proj`, siluGate(slice(gateUp, 1, 0, F), slice(gateUp, 1, F, 2 * F))));
}

/** x [N, heads·D] normalised head by head: viewed as [N, heads, D], the norm runs over the last axis. */
function perHeadNorm(x: Value, weight: Value, heads: number, config: LlamaConfig, norm: NormFn): Value {
  const [N, width] = x.shape as [number, number];
  const D = config.headDim;
  return reshape(norm(reshape(x, [N, heads, D]), weight, config.rmsNormEps), [N, width]);
}

export interface BlockContext {
  batch: number;
  seq: number;
  /** RoPE tables [T, headDim] as graph values. */
  rot: { cos: Value; sin: Value };
  keyMask?: Value;
}

/** Decoder layer `i` on hidden states x [B·T, C] with causal attention (within the layer's sliding window, if any), one block as its own graph. */
export function llamaBlock(config: LlamaConfig, p: ParamSource, x: Value, i: number, ctx: BlockContext): Value {
  // Gemma 3's layers have their own RoPE and window: ctx.rot (the config's one RoPE) does not apply.
  const gemma = config.gemma3 ? gemma3SequenceAttention(config, p.graph, { batch: ctx.batch, seq: ctx.seq, ...(ctx.keyMask ? { keyMask: ctx.keyMask } : {}) }) : null;
  const maskOf = sequenceWindowMasks(config, p.graph, { batch: ctx.batch, seq: ctx.seq });
  const attend: LayerAttention = gemma ?? ((j, q, k, v, widths) =>
    causalAttention(q, k, v, { batch: ctx.batch, seq: ctx.seq, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: config.headDim }, ctx.rot, ctx.keyMask, maskOf(j, q.dtype)));
  return isGpt2(config) ? gpt2Layer(config, p, x, i, attend) : llamaLayer(config, p, x, i, attend);
}

/** Next-token logits [N, V] from hidden states [N, C]. */
export function llamaLogits(config: LlamaConfig, p: ParamSource, hidden: Value): Value {
  if (p.head) return p.head(hidden);
  const head = config.tieWordEmbeddings ? (isGpt2(config) ? GPT2_WTE : "model.embed_tokens.weight") : "lm_head.weight";
  return gemm(hidden, p.tensor(head), { transB: true });
}
