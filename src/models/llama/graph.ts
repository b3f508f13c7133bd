// The LLaMA-family decoder as a graph (LlamaForCausalLM's math, transformers' tensor names):
// embeddings → N × (RMSNorm → GQA attention with RoPE → residual → RMSNorm → SwiGLU → residual)
// → RMSNorm → tied or separate LM head.

import { type Value, add, causalAttention, gather, gemm, reshape, rmsNorm, ropeTables, siluGate } from "../../engine/index.js";
import type { ParamSource } from "../../arch/params.js";
import { type LlamaConfig, layerShape } from "../../arch/llama/config.js";

export interface DecoderInputs {
  /** Token ids, [B, T] int64. */
  ids: Value;
  /** Additive key mask [B, 1, 1, T]: 0 for real tokens, a large negative for padding. */
  keyMask?: Value;
}

/** Final normalised hidden states, [B·T, C]. */
export function llamaHidden(config: LlamaConfig, p: ParamSource, inputs: DecoderInputs): Value {
  const g = p.graph;
  const [B, T] = inputs.ids.shape as [number, number];
  const C = config.hiddenSize;
  const tables = ropeTables(T, config.headDim, config.ropeTheta);
  const rot = { cos: g.constant(tables.cos, [T, config.headDim]), sin: g.constant(tables.sin, [T, config.headDim]) };

  let x = reshape(gather(p.tensor("model.embed_tokens.weight"), inputs.ids), [B * T, C]); // (B·T, C)
  for (let i = 0; i < config.numLayers; i++) x = llamaBlock(config, p, x, i, { batch: B, seq: T, rot, keyMask: inputs.keyMask });
  return rmsNorm(x, p.tensor("model.norm.weight"), config.rmsNormEps);
}

export interface BlockContext {
  batch: number;
  seq: number;
  /** RoPE tables [T, headDim] as graph values. */
  rot: { cos: Value; sin: Value };
  keyMask?: Value;
}

/** Decoder layer `i` on hidden states x [B·T, C]: x + attn(norm(x)), then + mlp(norm(·)). */
export function llamaBlock(config: LlamaConfig, p: ParamSource, x: Value, i: number, ctx: BlockContext): Value {
  const pre = `model.layers.${i}`;
  const widths = layerShape(config, i);
  // A pruned layer may have lost every head or every MLP channel: its sub-block adds nothing.
  if (widths.numHeads > 0) {
    const h = rmsNorm(x, p.tensor(`${pre}.input_layernorm.weight`), config.rmsNormEps);
    const q = p.linear(`${pre}.self_attn.q_proj`, h);
    const k = p.linear(`${pre}.self_attn.k_proj`, h);
    const v = p.linear(`${pre}.self_attn.v_proj`, h);
    const shape = { batch: ctx.batch, seq: ctx.seq, heads: widths.numHeads, kvHeads: widths.numKvHeads, headDim: config.headDim };
    const attn = causalAttention(q, k, v, shape, ctx.rot, ctx.keyMask); // (B·T, H·D)
    x = add(x, p.linear(`${pre}.self_attn.o_proj`, attn));
  }
  if (widths.intermediateSize > 0) {
    const h2 = rmsNorm(x, p.tensor(`${pre}.post_attention_layernorm.weight`), config.rmsNormEps);
    const mlp = siluGate(p.linear(`${pre}.mlp.gate_proj`, h2), p.linear(`${pre}.mlp.up_proj`, h2));
    x = add(x, p.linear(`${pre}.mlp.down_proj`, mlp));
  }
  return x;
}

/** Next-token logits [N, V] from hidden states [N, C]. */
export function llamaLogits(config: LlamaConfig, p: ParamSource, hidden: Value): Value {
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  return gemm(hidden, p.tensor(head), { transB: true });
}
