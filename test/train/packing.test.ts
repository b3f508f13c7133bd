// Packing several examples into one row must not change what any of them computes: each example's
// per-token loss in a packed row equals its loss alone (and the plain language-model graph's), and
// the packed step's gradients are the answer-token-weighted mean of each example's gradients alone.
// Without the block mask and restarting positions the second example's loss does change, so the
// comparison can fail.

import { beforeAll, describe, expect, it } from "vitest";
import { Rng } from "../../src/core/rng.js";
import { packRows, packedBatch, type PackedBatch } from "../../src/data/packing.js";
import type { SftExample } from "../../src/data/sft-examples.js";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { buildLmScoreGraph, gradName, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildSftScoreGraph, buildSftTrainGraph, EXAMPLE_MASK, LOSS_WEIGHTS, POSITIONS } from "../../src/models/llama/sft-graphs.js";
import { REF_MODEL } from "../helpers/paths.js";
import { expectSameStep } from "../helpers/same-step.js";

const T = 24;

function example(n: number, answerFrom: number, salt: number): SftExample {
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 131 + salt * 17 + 5) % 4000);
  const loss = Uint8Array.from({ length: n }, (_, i) => (i >= answerFrom ? 1 : 0));
  return { ids, loss, line: salt };
}

const A = example(9, 5, 1); // fills 8 positions, 4 answer tokens
const B = example(13, 7, 2); // fills 12 positions, 6 answer tokens

function feeds(p: PackedBatch, weighted: boolean): Record<string, HostTensor> {
  const weights = Float32Array.from(p.lossMask, (m) => (weighted ? m / p.lossTokens : m));
  return {
    [IDS]: { data: p.ids, shape: [p.batch, T] },
    [TARGETS]: { data: p.targets, shape: [p.batch * T] },
    [POSITIONS]: { data: p.positions, shape: [p.batch, T] },
    [EXAMPLE_MASK]: { data: p.mask, shape: [p.batch, 1, T, T] },
    [LOSS_WEIGHTS]: { data: weights, shape: [p.batch * T] },
  };
}

/** A packed row as if packing were off: plain causal attention over the row, positions 0…T−1. */
function unmasked(p: PackedBatch): PackedBatch {
  const mask = new Float32Array(T * T).fill(-1e30);
  for (let i = 0; i < T; i++) mask.fill(0, i * T, i * T + i + 1);
  return { ...p, positions: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)), mask };
}

describe("packed rows", () => {
  let method: TuningMethod;
  let score: CompiledGraph;
  let trainStep: CompiledGraph;
  let weights: Record<string, HostTensor>;
  beforeAll(async () => {
    const model = LlamaModel.load(REF_MODEL);
    method = loraForDenseModel(model, { rank: 4, alpha: 8, seed: 1 });
    const rng = new Rng(3);
    for (const [name, p] of method.trainable) if (name.includes("lora_B")) rng.fillNormal(p.data, 0.02);
    weights = Object.fromEntries(method.trainable);
    const s = buildSftScoreGraph(method.config, method.params(new Graph()), 1, T);
    score = await CompiledGraph.compile(s.graph, s.outputs);
    const names = [...method.trainable.keys()];
    const t = buildSftTrainGraph(method.config, method.params(new Graph(), "train"), 1, T, names);
    trainStep = await CompiledGraph.compile(t.graph, t.outputs);
  });

  const nll = async (p: PackedBatch) => (await score.run({ ...weights, ...feeds(p, false) })).nll!.data as Float32Array;
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));

  it("packs A and B into one row, positions restarting, the rest padding", () => {
    const rows = packRows([A, B], T, true);
    expect(rows.map((r) => r.length)).toEqual([2]);
    expect(packRows([A, B], T, false).map((r) => r.length)).toEqual([1, 1]);
    expect(packRows([A, B, A], T, true).map((r) => r.length)).toEqual([2, 1]);
    const p = packedBatch(rows, 1, T, 0);
    expect(Array.from(p.positions.slice(6, 11), Number)).toEqual([6, 7, 0, 1, 2]);
    expect(p.tokens).toBe(20);
    expect(p.lossTokens).toBe(10);
    // B's first token (position 8) sees itself only; A's last (7) sees 0…7.
    expect(Array.from(p.mask.slice(8 * T, 8 * T + 10)).map((v) => (v === 0 ? 1 : 0))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(Array.from(p.mask.slice(7 * T, 7 * T + 9)).map((v) => (v === 0 ? 1 : 0))).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0]);
  });

  it("packs first-fit: every example once, no row over the window, rows over 90 % full", () => {
    const rng = new Rng(5);
    const many = Array.from({ length: 400 }, (_, i) => example(11 + rng.int(50), 5, i));
    const rows = packRows(many, 256, true);
    expect(rows.flat().map((e) => e.line).sort((a, b) => a - b)).toEqual(many.map((e) => e.line));
    const used = rows.map((r) => r.reduce((n, e) => n + e.ids.length - 1, 0));
    expect(Math.max(...used)).toBeLessThanOrEqual(256);
    const fill = used.reduce((a, b) => a + b, 0) / (rows.length * 256);
    expect(fill).toBeGreaterThan(0.9);
    expect(packRows(many, 256, false)).toHaveLength(400);
  });

  it("gives each example its per-token loss alone, and alone equals the plain language-model graph", async () => {
    const alone = [await nll(packedBatch([[A]], 1, T, 0)), await nll(packedBatch([[B]], 1, T, 0))];
    const packed = await nll(packedBatch([[A, B]], 1, T, 0));
    expect(maxDiff(packed.subarray(0, 8), alone[0]!.subarray(0, 8))).toBeLessThan(1e-4);
    expect(maxDiff(packed.subarray(8, 20), alone[1]!.subarray(0, 12))).toBeLessThan(1e-4);

    const lm = buildLmScoreGraph(method.config, method.params(new Graph()), 1, 12);
    const plain = await (await CompiledGraph.compile(lm.graph, lm.outputs)).run({
      ...weights,
      [IDS]: { data: BigInt64Array.from(B.ids.subarray(0, 12), BigInt), shape: [1, 12] },
      [TARGETS]: { data: BigInt64Array.from(B.ids.subarray(1, 13), BigInt), shape: [12] },
    });
    expect(maxDiff(plain.nll!.data as Float32Array, alone[1]!.subarray(0, 12))).toBeLessThan(1e-4);

    // The control: without the block mask and restarting positions, B sees A and its loss moves.
    const leaky = await nll(unmasked(packedBatch([[A, B]], 1, T, 0)));
    expect(maxDiff(leaky.subarray(8, 20), alone[1]!.subarray(0, 12))).toBeGreaterThan(1e-2);
  });

  it("gives the answer-weighted mean of each example's loss and gradients alone", async () => {
    const run = (rows: SftExample[][]) => trainStep.run({ ...weights, ...feeds(packedBatch(rows, 1, T, 0), true) });
    const [a, b, ab] = [await run([[A]]), await run([[B]]), await run([[A, B]])];
    const [na, nb] = [4, 6];
    const mix = (x: number, y: number) => (na * x + nb * y) / (na + nb);
    expect(Math.abs((ab.loss!.data[0] as number) - mix(a.loss!.data[0] as number, b.loss!.data[0] as number))).toBeLessThan(1e-5);
    let checked = 0;
    for (const name of method.trainable.keys()) {
      const [ga, gb, gab] = [a, b, ab].map((r) => r[gradName(name)]!.data as Float32Array);
      const expected = Array.from(ga!, (v, i) => mix(v, gb![i]!));
      const scale = Math.max(...expected.map(Math.abs), 1e-3);
      expect(maxDiff(gab!, expected), name).toBeLessThanOrEqual(1e-4 * scale);
      checked++;
    }
    expect(checked).toBeGreaterThan(0);
  });

  it("gives the same step with every layer recomputed in the backward (--checkpoint-activations)", async () => {
    const names = [...method.trainable.keys()];
    const t = buildSftTrainGraph(method.config, method.params(new Graph(), "train"), 1, T, names, { checkpoint: true });
    expect(t.graph.segments.length).toBe(method.config.numLayers);
    const ckpt = await CompiledGraph.compile(t.graph, t.outputs);
    const batch = { ...weights, ...feeds(packedBatch([[A, B]], 1, T, 0), true) };
    expectSameStep(names, await trainStep.run(batch), await ckpt.run(batch), 1e-6);
  });
});
