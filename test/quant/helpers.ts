// Deterministic synthetic weights and tiny models for quantization tests.

import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { llamaParamShapes } from "../../src/arch/llama/shapes.js";
import type { LlamaModel } from "../../src/models/llama/model.js";
import { expect } from "vitest";
import type { HostParam } from "../../src/arch/params.js";
import { CompiledGraph, Graph, type Value } from "../../src/engine/index.js";
import { type GridLinear, type QuantizedLinear, isGridLinear } from "../../src/quant/types.js";

/** `count` N(0, 1) float32 values from a seeded generator (Box–Muller over a 32-bit LCG). */
export function gaussian(count: number, seed: number): Float32Array {
  let state = seed >>> 0 || 1;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 0.5) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** Random codes below 2^bits. */
export function randomCodes(count: number, bits: number, seed: number): Uint8Array {
  let state = seed >>> 0 || 1;
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> (32 - bits);
  }
  return out;
}

/** A 1-layer model with random weights; qwen2 gives q/k/v biases. Every K and N is a multiple of 32. */
export function tinyModel(modelType: "llama" | "qwen2", seed = 1): Pick<LlamaModel, "config" | "weights" | "sourceDir"> {
  const config = parseLlamaConfig(
    {
      model_type: modelType,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 32,
      vocab_size: 96,
      tie_word_embeddings: modelType === "llama",
    },
    "tiny/config.json",
  );
  const weights = new Map<string, HostParam>();
  let i = 0;
  for (const [name, shape] of llamaParamShapes(config)) {
    const data = gaussian(shape.reduce((a, b) => a * b, 1), seed * 1000 + i++);
    for (let j = 0; j < data.length; j++) data[j] = data[j]! * 0.05;
    weights.set(name, { data, shape });
  }
  return { config, weights, sourceDir: null };
}

/** A layer known to be on a grid (RTN or NF4), for tests that read codes, scales and zeros. */
export function grid(q: QuantizedLinear | undefined): GridLinear {
  if (!q || !isGridLinear(q)) throw new Error(`expected an RTN or NF4 layer, got ${q?.kind ?? "none"}`);
  return q;
}

/** Builds y = layer(x) for x [M, K] with `build`, runs it, and checks y against x·Wᵀ computed on the host. */
export async function expectLinearGraph(build: (x: Value) => Value, w: Float32Array, M: number, K: number, N: number, digits: number, seed = 8): Promise<void> {
  const x = gaussian(M * K, seed);
  const g = new Graph();
  const y = build(g.input("x", [M, K]));
  const compiled = await CompiledGraph.compile(g, { y });
  const got = (await compiled.run({ x: { data: x, shape: [M, K] } })).y!.data as Float32Array;
  await compiled.release();
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let want = 0;
      for (let k = 0; k < K; k++) want += x[m * K + k]! * w[n * K + k]!;
      expect(got[m * N + n]).toBeCloseTo(want, digits);
    }
  }
}
