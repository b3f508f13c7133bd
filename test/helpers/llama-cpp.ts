// The real llama.cpp, through node-llama-cpp's prebuilt CPU binary (no download, no build): greedy
// tokens and per-token perplexity of a GGUF file, optionally with a GGUF LoRA adapter.

import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";

let llama: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  return llama;
}

/** Greedy continuation of `prompt` ids, `n` tokens, stopping at nothing (as slimtune with no EOS). */
export async function llamaGreedy(file: string, prompt: number[], n: number, lora?: string): Promise<number[]> {
  const model = await (await llamaCpp()).loadModel({ modelPath: file });
  const context = await model.createContext({ contextSize: 512, threads: 2, ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}) });
  try {
    const sequence = context.getSequence();
    const out: number[] = [];
    let input = prompt;
    for (let i = 0; i < n; i++) {
      const it = sequence.evaluate(input as never, { temperature: 0 });
      const { value } = await it.next();
      await it.return();
      out.push(Number(value));
      input = [Number(value)];
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
  const context = await model.createContext({ contextSize: ctx, batchSize: ctx, threads: 2 });
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
