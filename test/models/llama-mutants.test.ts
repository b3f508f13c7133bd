// The LLaMA graph's block-by-block and packed-row paths (block.ts, sft-graphs.ts) and Gemma 3's
// pieces (gemma3-layer.ts), each checked in well under a second so bench/mutation.mjs
// (models-llama) can run them once per mutant: six block graphs chained on the host against
// PyTorch's logits, a Gram matrix and a block loss worked on the host, packed rows against
// separate rows, and GeGLU / (1 + w) RMSNorm against their formulas.

import fs from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { CompiledGraph, Graph, type HostTensor, rmsNorm } from "../../src/engine/index.js";
import { HIDDEN_IN, HIDDEN_OUT, HIDDEN_TARGET, blockParamNames, buildBlockGraph, buildBlockLossGraph, embedRows, forEachChunk, gramName, inputGroups } from "../../src/models/llama/block.js";
import { geluTanhGate, onePlusNorm } from "../../src/models/llama/gemma3-layer.js";
import { IDS, TARGETS, buildLmScoreGraph, gradName } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { EXAMPLE_MASK, LOSS_WEIGHTS, POSITIONS, buildSftScoreGraph, buildSftTrainGraph } from "../../src/models/llama/sft-graphs.js";
import { refModelDir } from "../formats/helpers.js";

interface Reference {
  input_ids: number[][];
  fp32: { logits_at: Record<string, number[]> };
}

const frozen = (model: LlamaModel, inputs: Iterable<string> = []) => new DenseParams(new Graph(), model.weights, new Set(inputs));
const float = (data: Float32Array, shape: number[]): HostTensor => ({ data, shape });
const ids = (xs: number[], shape: number[]): HostTensor => ({ data: BigInt64Array.from(xs, BigInt), shape });

async function runOnce(built: { graph: Graph; outputs: Record<string, unknown> }, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const compiled = await CompiledGraph.compile(built.graph, built.outputs as never);
  try {
    return await compiled.run(feeds);
  } finally {
    await compiled.release();
  }
}

/** x / rms(x) · w over rows of C, in float64. */
function hostRmsNorm(x: Float32Array, w: Float32Array, eps: number): Float64Array {
  const C = w.length;
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[r * C + c]! ** 2;
    const inv = 1 / Math.sqrt(s / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = x[r * C + c]! * inv * w[c]!;
  }
  return out;
}

describe("ref-llama-5m block by block", () => {
  const ref = JSON.parse(fs.readFileSync(`${refModelDir}/reference.json`, "utf8")) as Reference;
  let model: LlamaModel;
  let embedded: Float32Array;
  const B = ref.input_ids.length;
  const T = ref.input_ids[0]!.length;
  beforeAll(() => {
    model = LlamaModel.load(refModelDir);
    embedded = embedRows(model.weights.get("model.embed_tokens.weight")!, Int32Array.from(ref.input_ids.flat()), model.config);
  });

  it("six block graphs, one sequence at a time, then the final norm and tied head on the host, give PyTorch's logits", async () => {
    const C = model.config.hiddenSize;
    let x = embedded;
    for (let layer = 0; layer < model.config.numLayers; layer++) {
      const next = new Float32Array(x.length);
      const batches: number[] = [];
      // batch 1 over 2 sequences: two chunks, rows [0, T) and [T, 2T).
      await forEachChunk(
        x,
        { rows: B * T, hidden: C, seq: T, batch: 1 },
        async (b) => {
          batches.push(b);
          const built = buildBlockGraph(model.config, layer, frozen(model), b, T);
          return CompiledGraph.compile(built.graph, built.outputs);
        },
        {},
        (out, first, rows) => {
          expect(out[HIDDEN_OUT]!.shape).toEqual([rows, C]);
          next.set(out[HIDDEN_OUT]!.data as Float32Array, first * C);
        },
      );
      expect(batches).toEqual([1, 1]);
      x = next;
    }
    const h = hostRmsNorm(x, model.weights.get("model.norm.weight")!.data, model.config.rmsNormEps);
    const E = model.weights.get("model.embed_tokens.weight")!.data;
    for (const [key, expected] of Object.entries(ref.fp32.logits_at)) {
      const [b, t] = key.split(",").map(Number) as [number, number];
      const row = (b * T + t) * C;
      let worst = 0;
      expected.forEach((e, v) => {
        let dot = 0;
        for (let c = 0; c < C; c++) dot += h[row + c]! * E[v * C + c]!;
        worst = Math.max(worst, Math.abs(dot - e));
      });
      expect(worst, key).toBeLessThan(2e-3);
    }
  });

  it("Gram outputs: XᵀX of the normed input for q/k/v (one product, shared), and nothing else without hidden_out", async () => {
    const C = model.config.hiddenSize;
    const q = "model.layers.0.self_attn.q_proj";
    const k = "model.layers.0.self_attn.k_proj";
    const built = buildBlockGraph(model.config, 0, frozen(model), 1, T, [q, k], { hidden: false });
    expect(Object.keys(built.outputs).sort()).toEqual([gramName(k), gramName(q)]);
    expect(built.outputs[gramName(q)]).toBe(built.outputs[gramName(k)]);
    const x = embedded.subarray(0, T * C);
    const out = await runOnce(built, { [HIDDEN_IN]: float(Float32Array.from(x), [T, C]) });
    const X = hostRmsNorm(x, model.weights.get("model.layers.0.input_layernorm.weight")!.data, model.config.rmsNormEps);
    const gram = out[gramName(q)]!.data as Float32Array;
    expect(out[gramName(q)]!.shape).toEqual([C, C]);
    for (const [i, j] of [[0, 0], [0, 1], [5, 200], [255, 17], [128, 128]] as const) {
      let s = 0;
      for (let t = 0; t < T; t++) s += X[t * C + i]! * X[t * C + j]!;
      expect(Math.abs(gram[i * C + j]! - s), `${i},${j}`).toBeLessThan(1e-4 * (1 + Math.abs(s)));
    }
    expect(() => buildBlockGraph(model.config, 0, frozen(model), 1, T, ["model.layers.1.mlp.up_proj"])).toThrow('block 0 has no linear layer "model.layers.1.mlp.up_proj"');
  });

  it("block loss: mean squared distance to the target, and its gradient by central differences", async () => {
    const C = model.config.hiddenSize;
    const x = Float32Array.from(embedded.subarray(0, T * C));
    const y = (await runOnce(buildBlockGraph(model.config, 2, frozen(model), 1, T), { [HIDDEN_IN]: float(x, [T, C]) }))[HIDDEN_OUT]!.data as Float32Array;
    const target = y.map((v) => v - 0.5);
    const W = "model.layers.2.mlp.down_proj.weight";
    const w = model.weights.get(W)!;
    const loss = async (data: Float32Array) => {
      const out = await runOnce(buildBlockLossGraph(model.config, 2, frozen(model, [W]), 1, T, [W]), { [HIDDEN_IN]: float(x, [T, C]), [HIDDEN_TARGET]: float(target, [T, C]), [W]: float(data, w.shape) });
      return { loss: out.loss!.data[0] as number, grad: out[gradName(W)]!.data as Float32Array };
    };
    const at = await loss(w.data);
    expect(at.loss).toBeCloseTo(0.25, 5);
    // Quadratic in each weight: the central difference is exact but for float32 rounding.
    const i = 7 * w.shape[1]! + 3;
    const eps = 1e-2;
    const moved = (d: number) => Float32Array.from(w.data, (v, j) => (j === i ? v + d : v));
    const fd = ((await loss(moved(eps))).loss - (await loss(moved(-eps))).loss) / (2 * eps);
    expect(Math.abs(at.grad[i]! - fd)).toBeLessThan(2e-3 * Math.abs(fd) + 1e-7);
    expect(() => buildBlockLossGraph(model.config, 2, frozen(model), 1, T, ["model.layers.3.mlp.down_proj.weight"])).toThrow('"model.layers.3.mlp.down_proj.weight" is not an input of block 2');
  });

  it("input groups in the order the block computes them, and one layer's parameter names", () => {
    expect(inputGroups(model.config, 3)).toEqual([
      ["model.layers.3.self_attn.q_proj", "model.layers.3.self_attn.k_proj", "model.layers.3.self_attn.v_proj"],
      ["model.layers.3.self_attn.o_proj"],
      ["model.layers.3.mlp.gate_proj", "model.layers.3.mlp.up_proj"],
      ["model.layers.3.mlp.down_proj"],
    ]);
    const weights = new Map(["model.layers.1.mlp.up_proj.weight", "model.layers.10.mlp.up_proj.weight", "model.layers.1.input_layernorm.weight", "transformer.h.1.attn.c_attn.weight"].map((n) => [n, { data: new Float32Array(1), shape: [1] }]));
    expect(blockParamNames(weights, 1, { modelType: "llama" })).toEqual(["model.layers.1.mlp.up_proj.weight", "model.layers.1.input_layernorm.weight"]);
    expect(blockParamNames(weights, 1, { modelType: "gpt2" })).toEqual(["transformer.h.1.attn.c_attn.weight"]);
  });
});

describe("forEachChunk", () => {
  it("runs `batch` sequences at a time and a smaller last chunk, feeding each its rows as [rows, C]", async () => {
    const C = 2;
    const T = 3;
    const x = Float32Array.from({ length: 3 * T * C }, (_, i) => i); // three sequences
    const graphs: number[] = [];
    const fed: Array<{ shape: readonly number[]; first: number; extra: number }> = [];
    const chunks: Array<[number, number]> = [];
    await forEachChunk(
      x,
      { rows: 3 * T, hidden: C, seq: T, batch: 2 },
      async (b) => {
        graphs.push(b);
        // A stand-in for a compiled block graph: hands back what it was fed.
        return { run: async (feeds: Record<string, HostTensor>) => feeds } as unknown as CompiledGraph;
      },
      { fixed: float(new Float32Array(1), [1]) },
      (out, first, rows) => {
        const h = out[HIDDEN_IN]!;
        fed.push({ shape: h.shape, first: (h.data as Float32Array)[0]!, extra: (out.extra!.data as Float32Array)[0]! });
        expect(out.fixed).toBeDefined();
        chunks.push([first, rows]);
      },
      (first, rows) => ({ extra: float(Float32Array.of(first * 100 + rows), [1]) }),
    );
    expect(graphs).toEqual([2, 1]);
    expect(chunks).toEqual([[0, 2 * T], [2 * T, T]]);
    expect(fed).toEqual([
      { shape: [2 * T, C], first: 0, extra: 6 },
      { shape: [T, C], first: 2 * T * C, extra: 600 + 3 },
    ]);
  });
});

describe("GPT-2's block groups and Gemma's embedding scale", () => {
  it("gpt2: each of the four linear layers reads its own input", () => {
    const config = parseLlamaConfig({ model_type: "gpt2", n_embd: 64, n_head: 2, n_layer: 2, n_positions: 32, vocab_size: 96 }, "gpt2/config.json");
    expect(inputGroups(config, 1)).toEqual([["transformer.h.1.attn.c_attn"], ["transformer.h.1.attn.c_proj"], ["transformer.h.1.mlp.c_fc"], ["transformer.h.1.mlp.c_proj"]]);
  });

  it("embedRows copies each id's row and scales Gemma 3's by float32 √C", () => {
    const embed = { data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), shape: [3, 4] };
    expect(Array.from(embedRows(embed, Int32Array.from([2, 0]), { hiddenSize: 4 }))).toEqual([9, 10, 11, 12, 1, 2, 3, 4]);
    const gemma = { hiddenSize: 4, gemma3: {} as never };
    expect(Array.from(embedRows(embed, Int32Array.from([1]), gemma))).toEqual([10, 12, 14, 16]);
  });
});

describe("packed rows (sft-graphs)", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(refModelDir);
  });

  it("each example of a packed row scores as it does alone; the loss is Σ weight · nll", async () => {
    const a = [17, 200, 5, 999, 31];
    const b = [8, 4000, 77, 6];
    const T = a.length + b.length;
    const next = (xs: number[]) => [...xs.slice(1), 0];
    const mask = new Float32Array(T * T).fill(-1e30);
    for (let i = 0; i < T; i++) for (let j = i < a.length ? 0 : a.length; j <= i; j++) mask[i * T + j] = 0;
    const targets = [...next(a), ...next(b)];
    const feeds = {
      [IDS]: ids([...a, ...b], [1, T]),
      [TARGETS]: ids(targets, [T]),
      [POSITIONS]: ids([...a.keys(), ...b.keys()], [1, T]),
      [EXAMPLE_MASK]: float(mask, [1, 1, T, T]),
    };
    const packed = (await runOnce(buildSftScoreGraph(model.config, frozen(model), 1, T), feeds)).nll!.data as Float32Array;
    expect(packed).toHaveLength(T);
    let worst = 0;
    for (const [k, ex] of [a, b].entries()) {
      const alone = (await runOnce(buildLmScoreGraph(model.config, frozen(model), 1, ex.length), { [IDS]: ids(ex, [1, ex.length]), [TARGETS]: ids(next(ex), [ex.length]) })).nll!.data as Float32Array;
      for (let t = 0; t < ex.length - 1; t++) worst = Math.max(worst, Math.abs(alone[t]! - packed[k * a.length + t]!));
    }
    expect(worst).toBeLessThan(1e-4);
    // Weights on two answer tokens: the loss is their weighted sum, and a gradient comes out.
    const weights = new Float32Array(T);
    weights[1] = 0.25;
    weights[6] = 0.75;
    const W = "model.norm.weight";
    const out = await runOnce(buildSftTrainGraph(model.config, frozen(model, [W]), 1, T, [W]), { ...feeds, [LOSS_WEIGHTS]: float(weights, [T]), [W]: model.weights.get(W)! });
    expect(out.loss!.data[0] as number).toBeCloseTo(0.25 * packed[1]! + 0.75 * packed[6]!, 4);
    expect(out[gradName(W)]!.shape).toEqual([model.config.hiddenSize]);
  });
});

describe("Gemma 3's pieces", () => {
  it("geluTanhGate is 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))·up; onePlusNorm scales by 1 + w", async () => {
    const gate = [-3, -1, -0.2, 0, 0.5, 2];
    const up = [1, 2, -1, 4, 0.5, -2];
    const g = new Graph();
    const x = g.input("gate", [2, 3]);
    const u = g.input("up", [2, 3]);
    const w = g.input("w", [3]);
    const out = await runOnce(
      { graph: g, outputs: { y: geluTanhGate(x, u), n: onePlusNorm(rmsNorm)(x, w, 1e-6) } },
      { gate: float(Float32Array.from(gate), [2, 3]), up: float(Float32Array.from(up), [2, 3]), w: float(Float32Array.from([0, 1, -0.5]), [3]) },
    );
    const y = out.y!.data as Float32Array;
    gate.forEach((v, i) => {
      const want = 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))) * up[i]!;
      expect(y[i]!, `gelu ${v}`).toBeCloseTo(want, 5);
    });
    const n = out.n!.data as Float32Array;
    const norm = hostRmsNorm(Float32Array.from(gate), Float32Array.from([1, 2, 0.5]), 1e-6);
    norm.forEach((v, i) => expect(n[i]!, `norm ${i}`).toBeCloseTo(v, 5));
  });
});
