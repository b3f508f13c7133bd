// GPT-2's forward pass on the host in float64, written from transformers' modeling_gpt2.py (not
// from slimtune's graph): the independent reference the gpt2 family test measures slimtune and
// llama.cpp against. The activation is a parameter so that ggml's own GELU (a float16 table) can be
// reproduced exactly.

import { roundToF16 } from "../../src/core/f16.js";
import type { LlamaModel } from "../../src/models/llama/model.js";

const K = Math.sqrt(2 / Math.PI);
/** transformers' gelu_new. */
export const geluNew = (x: number): number => 0.5 * x * (1 + Math.tanh(K * (x + 0.044715 * x * x * x)));

/**
 * ggml's CPU GELU (GGML_GELU_FP16, on by default): the input rounded to float16 indexes a table of
 * float16 results of float32 gelu; outside [-10, 10] it is 0 or x.
 */
export function geluGgml(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  const h = roundToF16(x);
  const f = Math.fround;
  return roundToF16(f(0.5 * h * f(1 + Math.tanh(f(K * h * f(1 + 0.044715 * h * h))))));
}

/** Log-probabilities of the next token after each prefix of `ids`, [T][V], with `gelu` as the activation. */
export function gpt2ReferenceLogProbs(model: LlamaModel, ids: number[], gelu: (x: number) => number = geluNew): Float64Array[] {
  const { hiddenSize: C, numHeads: H, headDim: D, numLayers, vocabSize: V, rmsNormEps: eps, intermediateSize: F } = model.config;
  const w = (name: string) => model.weights.get(name)!.data;
  const T = ids.length;
  // x[t]: the residual stream of token t.
  let x = ids.map((id, t) => Float64Array.from({ length: C }, (_, c) => w("transformer.wte.weight")[id * C + c]! + w("transformer.wpe.weight")[t * C + c]!));
  const norm = (v: Float64Array, prefix: string) => {
    const mean = v.reduce((a, b) => a + b, 0) / C;
    const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / C;
    const s = 1 / Math.sqrt(variance + eps);
    return v.map((vi, c) => (vi - mean) * s * w(`${prefix}.weight`)[c]! + w(`${prefix}.bias`)[c]!);
  };
  // slimtune holds Linear/Conv1D weights as [out, in]: y[o] = Σ_i W[o, i]·v[i] + b[o].
  const linear = (v: Float64Array, path: string, out: number) => {
    const W = w(`${path}.weight`);
    const b = w(`${path}.bias`);
    const n = v.length;
    return Float64Array.from({ length: out }, (_, o) => {
      let s = b[o]!;
      for (let i = 0; i < n; i++) s += W[o * n + i]! * v[i]!;
      return s;
    });
  };
  for (let l = 0; l < numLayers; l++) {
    const p = `transformer.h.${l}`;
    const qkv = x.map((v) => linear(norm(v, `${p}.ln_1`), `${p}.attn.c_attn`, 3 * C));
    const attended = qkv.map((_, t) => {
      const out = new Float64Array(C);
      for (let h = 0; h < H; h++) {
        const scores = Array.from({ length: t + 1 }, (_, j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[t]![h * D + d]! * qkv[j]![C + h * D + d]!;
          return s / Math.sqrt(D);
        });
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let d = 0; d < D; d++) out[h * D + d]! += (e[j]! / z) * qkv[j]![2 * C + h * D + d]!;
      }
      return out;
    });
    x = x.map((v, t) => {
      const a = linear(attended[t]!, `${p}.attn.c_proj`, C);
      const y = v.map((vi, c) => vi + a[c]!);
      const m = linear(linear(norm(y, `${p}.ln_2`), `${p}.mlp.c_fc`, F).map(gelu), `${p}.mlp.c_proj`, C);
      return y.map((yi, c) => yi + m[c]!);
    });
  }
  const head = w(model.config.tieWordEmbeddings ? "transformer.wte.weight" : "lm_head.weight");
  return x.map((v) => {
    const h = norm(v, "transformer.ln_f");
    const logits = Float64Array.from({ length: V }, (_, k) => {
      let s = 0;
      for (let c = 0; c < C; c++) s += head[k * C + c]! * h[c]!;
      return s;
    });
    const top = Math.max(...logits);
    const lse = top + Math.log(logits.reduce((a, b) => a + Math.exp(b - top), 0));
    return logits.map((l) => l - lse);
  });
}
