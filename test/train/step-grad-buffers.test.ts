// The training step's gradients land in buffers the loop owns: CompiledGraph.run's `into` makes
// ONNX Runtime write an output into a caller's buffer and returns that buffer, and forwardBackward
// reuses one set of buffers every step, giving the same mean gradients as fresh outputs would; the
// copies onnxruntime-node still returns are freed by collectGarbage before the next step.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor, add, mul } from "../../src/engine/index.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { IDS, TARGETS, buildLmTrainGraph, gradName } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { collectGarbage } from "../../src/engine/collect-garbage.js";
import { forwardBackward } from "../../src/train/loop.js";
import type { Batch } from "../../src/train/task.js";
import { REF_MODEL } from "../helpers/paths.js";

describe("CompiledGraph.run into caller buffers", () => {
  it("writes the named output into the given buffer, returns that buffer, and leaves the others fresh", async () => {
    const g = new Graph();
    const x = g.input("x", [4]);
    const w = g.input("w", [4]);
    const compiled = await CompiledGraph.compile(g, { prod: mul(x, w), sum: add(x, w) });
    const buffer = { data: new Float32Array(4).fill(-7), shape: [4] };
    const feeds = (xs: number[]) => ({ x: { data: new Float32Array(xs), shape: [4] }, w: { data: new Float32Array([2, 3, 4, 5]), shape: [4] } });
    const first = await compiled.run(feeds([1, 2, 3, 4]), ["prod", "sum"], { prod: buffer });
    expect(first.prod!.data).toBe(buffer.data);
    expect([...buffer.data]).toEqual([2, 6, 12, 20]);
    expect([...first.sum!.data]).toEqual([3, 5, 7, 9]);
    const second = await compiled.run(feeds([-1, 0, 1, 2]), ["prod", "sum"], { prod: buffer });
    expect(second.prod!.data).toBe(buffer.data);
    expect([...buffer.data]).toEqual([-2, 0, 4, 10]);
    expect(second.sum!.data).not.toBe(first.sum!.data);
    await compiled.release();
  });
});

describe("forwardBackward with the loop's gradient buffers", () => {
  const B = 2;
  const T = 16;
  let model: LlamaModel;
  let step: CompiledGraph;
  let names: string[];
  const batches: Batch[] = [];

  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    const method = fullFineTuning(model);
    names = [...method.trainable.keys()];
    const { graph, outputs } = buildLmTrainGraph(model.config, method.params(new Graph(), "train"), B, T, names);
    step = await CompiledGraph.compile(graph, outputs);
    for (let k = 0; k < 3; k++) {
      const ids = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 37 + k * 11 + 5) % model.config.vocabSize));
      const targets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 53 + k * 7 + 1) % model.config.vocabSize));
      batches.push({ feeds: { [IDS]: { data: ids, shape: [B, T] }, [TARGETS]: { data: targets, shape: [B * T] } }, tokens: B * T, shape: "one" });
    }
  });
  afterAll(async () => {
    await step.release();
  });

  const weights = (): Record<string, HostTensor> => Object.fromEntries(model.weights);
  const samplerOf = (list: Batch[]) => {
    let i = 0;
    return { next: () => list[i++]! };
  };
  const freshBuffers = () => new Map(names.map((n) => [n, { data: new Float32Array(model.weights.get(n)!.data.length).fill(Number.NaN), shape: model.weights.get(n)!.shape }]));

  it("one micro-batch: the gradients ORT returns fresh, written into the loop's buffers", async () => {
    const fresh = await step.run({ ...weights(), ...batches[0]!.feeds });
    const buffers = freshBuffers();
    const { loss, grads } = await forwardBackward(async () => step, samplerOf([batches[0]!]), weights(), buffers, 1, () => ({}));
    expect(loss).toBe(fresh.loss!.data[0]);
    for (const n of names) {
      expect(grads.get(n)).toBe(buffers.get(n)!.data);
      expect(grads.get(n)).toEqual(fresh[gradName(n)]!.data);
    }
  });

  it("two micro-batches: the mean of both, in the same buffers, whatever they held before", async () => {
    const a = await step.run({ ...weights(), ...batches[1]!.feeds });
    const b = await step.run({ ...weights(), ...batches[2]!.feeds });
    const buffers = freshBuffers();
    await forwardBackward(async () => step, samplerOf([batches[0]!]), weights(), buffers, 1, () => ({}));
    const { loss, grads, tokens } = await forwardBackward(async () => step, samplerOf([batches[1]!, batches[2]!]), weights(), buffers, 2, () => ({}));
    expect(tokens).toBe(2 * B * T);
    expect(loss).toBeCloseTo(((a.loss!.data[0] as number) + (b.loss!.data[0] as number)) / 2, 6);
    let worst = 0;
    for (const n of names) {
      const g = grads.get(n)!;
      expect(g).toBe(buffers.get(n)!.data);
      const ga = a[gradName(n)]!.data as Float32Array;
      const gb = b[gradName(n)]!.data as Float32Array;
      for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i]! - (ga[i]! + gb[i]!) / 2) / (Math.abs(ga[i]!) + Math.abs(gb[i]!) + 1e-6));
    }
    expect(worst).toBeLessThan(1e-5);
  });
});

describe("collectGarbage", () => {
  it("frees a dropped buffer at once", async () => {
    const ref = (() => new WeakRef(new ArrayBuffer(64 * 2 ** 20)))();
    // A WeakRef keeps its target alive until the current job ends.
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(collectGarbage()).toBe(true);
    expect(ref.deref()).toBeUndefined();
  });
});
