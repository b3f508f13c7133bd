// The real llama.cpp, through node-llama-cpp's prebuilt CPU binary (no download, no build): greedy
// tokens and per-token perplexity of a GGUF file, optionally with a GGUF LoRA adapter.

import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";

let llama: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  return llama;
}

// One thread: ggml's worker threads spin at barriers, which on a machine whose cores are busy
// costs seconds per token; one thread measures the same numbers without that hazard.

/** Greedy continuation of `prompt` ids, `n` tokens, stopping at nothing (as slimtune with no EOS). */
export async function llamaGreedy(file: string, prompt: number[], n: number, lora?: string): Promise<number[]> {
  const model = await (await llamaCpp()).loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 512, threads: 1, ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}) });
  try {
    const sequence = context.getSequence();
    const out: number[] = [];
    // One evaluation that feeds each token back: llama.cpp's own generation loop.
    for await (const token of sequence.evaluate(prompt as never, { temperature: 0 })) {
      out.push(Number(token));
      if (out.length === n) break;
    }
    return out;
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/**
 * Perplexity over non-overlapping windows of `ctx` tokens, each predicting tokens 2..L from the ones
 * before: slimtune's protocol (eval/perplexity.ts), computed by llama.cpp.
 */
export async function llamaPerplexity(file: string, tokens: Int32Array, ctx: number): Promise<number> {
  const model = await (await llamaCpp()).loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: ctx, batchSize: ctx, threads: 1 });
  try {
    const sequence = context.getSequence();
    let nll = 0;
    let n = 0;
    for (let s = 0; s + 1 < tokens.length; s += ctx) {
      const w = Array.from(tokens.subarray(s, Math.min(s + ctx, tokens.length)));
      if (w.length < 2) break;
      await sequence.clearHistory();
      const items = w.map((t, i) => (i < w.length - 1 ? [t, { generateNext: { probabilities: true } }] : t));
      const res = await sequence.controlledEvaluate(items as never);
      for (let i = 0; i < w.length - 1; i++) {
        const p = res[i]!.next!.probabilities!.get(w[i + 1]! as never) ?? 0;
        nll -= Math.log(p);
        n++;
      }
    }
    return Math.exp(nll / n);
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/**
 * llama.cpp's next-token distribution after each prefix of `prompt`: one map token → probability per
 * position. The key/value cache is float32 and flash attention off: llama.cpp's defaults (an F16
 * cache, flash attention chosen automatically, which on the CPU rounds to F16 either way) move log p
 * by up to ~1e-2 on a tiny model; without them what remains is float32 arithmetic in another order
 * (measured ≤ 2e-5).
 */
export async function llamaNextProbabilities(file: string, prompt: number[]): Promise<Array<Map<number, number>>> {
  const model = await (await llamaCpp()).loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 512, batchSize: 512, threads: 1, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  try {
    const items = prompt.map((t) => [t, { generateNext: { probabilities: true } }]);
    const res = await context.getSequence().controlledEvaluate(items as never);
    return prompt.map((_, i) => new Map([...res[i]!.next!.probabilities!].map(([t, p]) => [Number(t), p])));
  } finally {
    await context.dispose();
    await model.dispose();
  }
}
