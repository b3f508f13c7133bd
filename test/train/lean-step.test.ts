// train() through its lean step (leanStep in train/loop.ts: step sessions without ORT's memory
// arena and a full collection before each step), which real runs take past 1 GiB of trainable
// weights and no test model reaches: the threshold is lowered through TrainOptions.leanStepBytes
// so full fine-tuning of ref-llama-5m runs lean. Its losses, gradient norms and final weights equal
// the ordinary path's to float tolerance; its step sessions were created without the arena while
// the held-out scoring kept it; and one collection ran before each step.

import fs from "node:fs";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { collectGarbage } from "../../src/engine/collect-garbage.js";
import { CompiledGraph, type SessionOptions } from "../../src/engine/index.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { gradName } from "../../src/models/llama/lm-graphs.js";
import { LEAN_STEP_BYTES, type StepReport, defaultTrainOptions, leanStep, train } from "../../src/train/loop.js";
import { lmTask } from "../../src/train/lm-task.js";
import { REF_MODEL, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

// collectGarbage, observed (the real collection still runs).
vi.mock("../../src/engine/collect-garbage.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/engine/collect-garbage.js")>();
  return { ...real, collectGarbage: vi.fn(real.collectGarbage) };
});

const STEPS = 4;
let tokens: Int32Array;

beforeAll(async () => {
  const tok = await loadTokenizer(REF_MODEL);
  tokens = Int32Array.from(tok.encode(fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 200_000)));
});

interface Run {
  steps: StepReport[];
  weights: Map<string, Float32Array>;
  heldOut: [number, number];
  /** The options each session was compiled with: training steps apart from held-out scoring. */
  sessions: { step: boolean; options: SessionOptions }[];
  collections: number;
}

/** Full fine-tuning of ref-llama-5m for a few steps, lean from `leanStepBytes` (undefined: the default). */
async function run(leanStepBytes: number | undefined): Promise<Run> {
  const model = LlamaModel.load(REF_MODEL);
  const method = fullFineTuning(model);
  const grads = new Set([...method.trainable.keys()].map(gradName));
  const sessions: Run["sessions"] = [];
  const compile = CompiledGraph.compile.bind(CompiledGraph);
  const spy = vi.spyOn(CompiledGraph, "compile").mockImplementation((graph, outputs, options) => {
    sessions.push({ step: Object.keys(outputs).some((k) => grads.has(k)), options: { ...options } });
    return compile(graph, outputs, options);
  });
  vi.mocked(collectGarbage).mockClear();
  const steps: StepReport[] = [];
  const summary = await train(
    method,
    lmTask(tokens, { batch: 2, seq: 32, heldOut: 0.05, evalTokens: 256 }),
    { ...defaultTrainOptions, steps: STEPS, lr: 1e-3, warmupSteps: 1, evalEvery: 0, checkpointEvery: 0, outDir: scratchDir("lean-step"), ...(leanStepBytes !== undefined ? { leanStepBytes } : {}) },
    { onStep: (r) => steps.push(r) },
  ).finally(() => spy.mockRestore());
  return {
    steps,
    weights: new Map([...model.weights].map(([n, w]) => [n, w.data])),
    heldOut: [summary.heldOutBefore!.loss, summary.heldOutAfter!.loss],
    sessions,
    collections: vi.mocked(collectGarbage).mock.calls.length,
  };
}

describe("train() through the lean step", () => {
  it("the threshold: lean from 1 GiB of trainable weights by default, from any size given", () => {
    expect(LEAN_STEP_BYTES).toBe(2 ** 30);
    expect(leanStep(2 ** 30 - 4)).toBe(false);
    expect(leanStep(2 ** 30)).toBe(true);
    expect(leanStep(22e6, 1)).toBe(true);
  });

  it("gives the ordinary path's losses and updates, with arena-less step sessions and a collection per step", async () => {
    const ordinary = await run(undefined);
    const lean = await run(1);

    // The ordinary run (22 MB of weights) is not lean: every session keeps the arena, nothing is collected.
    expect(ordinary.collections).toBe(0);
    expect(ordinary.sessions.filter((s) => s.step)).not.toHaveLength(0);
    for (const s of ordinary.sessions) expect(s.options.memoryArena).not.toBe(false);
    // The lean run: step sessions without the arena, held-out scoring with it, one collection before each step.
    expect(lean.collections).toBe(STEPS);
    const [leanSteps, leanEval] = [lean.sessions.filter((s) => s.step), lean.sessions.filter((s) => !s.step)];
    expect(leanSteps).not.toHaveLength(0);
    expect(leanEval).not.toHaveLength(0);
    for (const s of leanSteps) expect(s.options.memoryArena).toBe(false);
    for (const s of leanEval) expect(s.options.memoryArena).not.toBe(false);

    expect(lean.steps).toHaveLength(STEPS);
    lean.steps.forEach((r, i) => {
      const o = ordinary.steps[i]!;
      expect(Math.abs(r.loss - o.loss), `loss at step ${r.step}`).toBeLessThanOrEqual(1e-6 * Math.abs(o.loss));
      expect(Math.abs(r.gradNorm - o.gradNorm), `gradient norm at step ${r.step}`).toBeLessThanOrEqual(1e-5 * o.gradNorm);
    });
    expect(lean.heldOut[1]).toBeCloseTo(ordinary.heldOut[1], 5);
    const initial = LlamaModel.load(REF_MODEL).weights;
    let moved = 0;
    for (const [name, w] of ordinary.weights) {
      const l = lean.weights.get(name)!;
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(l[i]! - w[i]!));
      expect(worst, name).toBeLessThan(1e-6);
      moved += w.some((x, i) => x !== initial.get(name)!.data[i]) ? 1 : 0;
    }
    // The weights did move (equal because both trained, not because neither did).
    expect(moved).toBeGreaterThan(0);
  });
});
