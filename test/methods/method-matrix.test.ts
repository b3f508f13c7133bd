// Every registered tuning method through one matrix (as PEFT's testing_common runs every tuner), on
// ref-llama-5m or the quantized base the method needs:
//   - the untrained method scores like its base (where the method says it starts there);
//   - a few steps on a fixed batch lower the training loss, move every trainable tensor, and leave
//     the base untouched;
//   - the trainable count the run reports is the one computed here from the shapes;
//   - save → load gives the same logits;
//   - merging (where the method merges for deployment) gives the same logits.
// A method added to src/methods/registry.ts without an entry here fails the first test.

import fs from "node:fs";
import path from "node:path";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { layerShape } from "../../src/arch/llama/config.js";
import { LINEAR_MODULES, READS_RESIDUAL, linearLayers, linearModuleOf, llamaParamShapes } from "../../src/arch/llama/shapes.js";
import type { LlamaConfig } from "../../src/arch/llama/config.js";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { deployedModel } from "../../src/export/deploy.js";
import { savePeftAdapter, loraKeys } from "../../src/formats/peft.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { flagDefaults } from "../../src/methods/flags.js";
import { lqloraAdapterDir } from "../../src/methods/lqlora/index.js";
import type { MethodDefinition, TuningMethod } from "../../src/methods/method.js";
import { methodScoring, methods, scoringFor } from "../../src/methods/registry.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { buildLmTrainGraph, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { type LoadedBase, loadBase } from "../../src/models/load.js";
import type { ScoringModel } from "../../src/models/scoring.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid } from "../../src/quant/linalg/kmeans.js";
import { lqloraQuantizeModel } from "../../src/quant/lqlora.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { quantizeReallmModel } from "../../src/quant/reallm.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { defaultTrainOptions, train } from "../../src/train/loop.js";
import { reallmMethod } from "../../src/methods/reallm/index.js";
import { gradName } from "../../src/models/llama/lm-graphs.js";
import { Rng } from "../../src/core/rng.js";
import { fixedBatchTask } from "../helpers/fixed-batch-task.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const ref = JSON.parse(fs.readFileSync(path.join(REF_MODEL, "reference.json"), "utf8")) as { input_ids: number[][]; targets: number[][] };
const LQLORA_RANK = 4;
const REALLM_RANK = 2;

/** "float-own": a float model of its own, for full fine-tuning, which trains the base's arrays in place. */
type BaseName = "float" | "float-own" | "rtn4" | "lqlora" | "reallm";

interface Entry {
  base: BaseName;
  /** Learning rate of the short run (a scale vector tolerates far less than a LoRA factor). */
  lr: number;
  /** What the untrained method scores like: its base exactly, or (LQ-LoRA: Q + L1·L2) the float model more closely than Q alone. */
  start: "base" | "closer-to-float" | null;
  /** Trainable values, computed from the config alone. */
  trainableCount(config: LlamaConfig, method: TuningMethod): number;
  /** What the method saved, loaded back as a scoring model, the way eval/--adapter or --model reads it. */
  reload(base: LoadedBase, dir: string): ScoringModel;
  /** Deployment merges the saved result into its base (export/deploy.ts). */
  merges: boolean;
}

const sumLinears = (config: LlamaConfig, f: (n: number, k: number, path: string) => number) =>
  linearLayers(config).reduce((s, l) => s + f(l.outFeatures, l.inFeatures, l.path), 0);
const asAdapter = (base: LoadedBase, dir: string) => scoringFor(base, dir);
const asFolder = (_base: LoadedBase, dir: string) => baseScoring(loadBase(dir));

const MATRIX: Record<string, Entry> = {
  full: {
    base: "float-own",
    lr: 1e-4,
    start: "base",
    // Every tensor of the model: the 5 475 584 that ref-llama-5m's training_log.json lists.
    trainableCount: (config) => [...llamaParamShapes(config).values()].reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0),
    reload: asFolder,
    merges: false,
  },
  lora: {
    base: "float",
    lr: 1e-3,
    start: "base",
    trainableCount: (config, m) => sumLinears(config, (n, k) => (m as TuningMethod & { rank: number }).rank * (n + k)),
    reload: asAdapter,
    merges: true,
  },
  qlora: {
    base: "rtn4",
    lr: 1e-3,
    start: "base",
    trainableCount: (config, m) => sumLinears(config, (n, k) => (m as TuningMethod & { rank: number }).rank * (n + k)),
    reload: asAdapter,
    merges: true,
  },
  finegates: {
    base: "float",
    lr: 1e-3,
    start: "base",
    // Per layer: one gate per MLP channel and per head, a column gate on each layer reading the
    // residual stream and a row gate on each writing it (both of width hidden).
    trainableCount: (config) => {
      let n = 0;
      for (let i = 0; i < config.numLayers; i++) n += layerShape(config, i).intermediateSize + layerShape(config, i).numHeads;
      return n + sumLinears(config, (N, K, p) => (READS_RESIDUAL.has(linearModuleOf(p)!) ? K : N));
    },
    reload: asFolder,
    merges: false,
  },
  peqa: {
    base: "rtn4",
    lr: 1e-5,
    start: "base",
    // One scale per output row and group of 64 input columns.
    trainableCount: (config) => sumLinears(config, (n, k) => n * (k / 64)),
    reload: asAdapter,
    merges: true,
  },
  lqlora: {
    base: "lqlora",
    lr: 1e-3,
    start: "closer-to-float",
    trainableCount: (config) => sumLinears(config, (n, k) => LQLORA_RANK * (n + k)),
    reload: asAdapter,
    merges: true,
  },
  reallm: {
    base: "reallm",
    lr: 1e-4,
    start: "base",
    trainableCount: (config) => sumLinears(config, (n, k) => REALLM_RANK * (n + k)),
    reload: asFolder,
    merges: false,
  },
};

/** Logits [B·T, V] of the reference batch. */
async function logitsOf(scoring: ScoringModel): Promise<Float32Array> {
  const B = ref.input_ids.length;
  const T = ref.input_ids[0]!.length;
  const { graph, outputs } = buildLmTrainGraph(scoring.config, scoring.params(new Graph()), B, T, [], { logits: true });
  const compiled = await CompiledGraph.compile(graph, outputs, { threads: 2 });
  const out = await compiled.run(
    {
      ...scoring.weightFeeds(),
      [IDS]: { data: BigInt64Array.from(ref.input_ids.flat(), BigInt), shape: [B, T] },
      [TARGETS]: { data: BigInt64Array.from(ref.targets.flat(), BigInt), shape: [B * T] },
    },
    ["logits"],
  );
  await compiled.release();
  return out.logits!.data as Float32Array;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Digest of every array the base holds (float weights, or codes, scales, zeros, factors and dense tensors). */
function baseDigest(base: LoadedBase): string {
  const h = createHash("sha256");
  const feed = (name: string, v: unknown) => {
    if (ArrayBuffer.isView(v)) {
      h.update(name);
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v).sort(([a], [b]) => a.localeCompare(b))) feed(`${name}.${k}`, x);
    }
  };
  if (base.kind === "float") for (const [n, w] of base.model.weights) feed(n, w.data);
  else {
    for (const [n, q] of base.model.linears) feed(n, q);
    for (const [n, w] of base.model.dense) feed(n, w.data);
  }
  return h.digest("hex");
}

const bases = new Map<BaseName, LoadedBase>();
let floatModel: LlamaModel;
const work = scratchDir("matrix");

async function buildBases(): Promise<void> {
  floatModel = LlamaModel.load(REF_MODEL);
  bases.set("float", { kind: "float", model: LlamaModel.load(REF_MODEL) });
  bases.set("float-own", { kind: "float", model: LlamaModel.load(REF_MODEL) });
  const save = (name: string, qm: QuantizedModel) => {
    const dir = path.join(work, name);
    saveQuantizedFolder(dir, qm);
    return dir;
  };
  bases.set("rtn4", loadBase(save("rtn4", quantizeModel(floatModel, { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false }))));

  const gemm = new HostGemm({ threads: 2 });
  const nearest = new NearestCentroid({ threads: 2 });
  try {
    // LQ-LoRA as `quantize --method lqlora` writes it: Q as a GPTQ folder, L1·L2 as a PEFT adapter inside.
    const lq = await lqloraQuantizeModel(floatModel, { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false }, { rank: LQLORA_RANK, gemm, seed: 0, maxIterations: 1 });
    const lqDir = save("lqlora", lq.qm);
    const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [p, f] of lq.factors) {
      const { a, b } = loraKeys(p);
      tensors.set(a, { data: f.l2, shape: [f.rank, f.l2.length / f.rank] });
      tensors.set(b, { data: f.l1, shape: [f.l1.length / f.rank, f.rank] });
    }
    savePeftAdapter(path.join(lqDir, lqloraAdapterDir), { r: LQLORA_RANK, loraAlpha: LQLORA_RANK, targetModules: [...LINEAR_MODULES], baseModelNameOrPath: lqDir }, tensors);
    bases.set("lqlora", loadBase(lqDir));
    // One VQ shape and short k-means keep this at ~15 s instead of ~150 s (the matrix needs a ReALLM
    // model, not a good one); float32 factors so that a saved folder holds exactly what trained.
    const re = await quantizeReallmModel(floatModel, {
      budget: 4, rank: REALLM_RANK, vqDims: [2], codeBits: 4, seed: 0, gemm, nearest, blockSize: 32, maxIterations: 1, kmeansIterations: 2, lowRankDtype: "float32",
    });
    bases.set("reallm", loadBase(save("reallm", re.qm)));
  } finally {
    await gemm.release();
    await nearest.release();
  }
}

beforeAll(buildBases, 300_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

// A property that does not apply to a method is not registered for it (rather than shown as skipped).
const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => undefined) as unknown as typeof it));

describe("method matrix", () => {
  it("every registered method has a row", () => {
    expect(Object.keys(MATRIX).sort()).toEqual(methods.map((m) => m.name).sort());
  });

  describe.each(methods.map((d) => [d.name, d] as [string, MethodDefinition]))("%s", (name, definition) => {
    const entry = MATRIX[name]!;
    let base: LoadedBase;
    let method: TuningMethod;
    let untrained: Float32Array;
    let trained: Float32Array;
    const out = () => path.join(work, `${name}-out`);

    beforeAll(async () => {
      base = bases.get(entry.base)!;
      method = definition.create(base, flagDefaults(definition.flags), { seed: 0 });
      untrained = await logitsOf(methodScoring(method));
    }, 120_000);

    itWhen(entry.start === "base")("untrained, it scores like its base", async () => {
      // 1e-4: the base runs MatMulNBits where the method dequantizes in the graph.
      expect(maxAbsDiff(untrained, await logitsOf(baseScoring(base)))).toBeLessThan(1e-4);
    });

    itWhen(entry.start === "closer-to-float")("untrained, Q + L1·L2 is closer to the float model than Q alone", async () => {
      const float = await logitsOf(baseScoring(bases.get("float")!));
      const gridOnly = await logitsOf(baseScoring(base));
      expect(maxAbsDiff(untrained, float)).toBeLessThan(0.8 * maxAbsDiff(gridOnly, float));
    });

    it("a few steps lower the loss, move every trainable tensor and nothing else; the count is right", async () => {
      const digest = baseDigest(base);
      const before = new Map([...method.trainable].map(([n, p]) => [n, Float32Array.from(p.data)]));
      const losses: number[] = [];
      const summary = await train(
        method,
        fixedBatchTask(ref.input_ids, ref.targets),
        { ...defaultTrainOptions, steps: 4, lr: entry.lr, warmupSteps: 0, minLrRatio: 1, evalEvery: 0, checkpointEvery: 0, outDir: path.join(work, `${name}-run`) },
        { onStep: (r) => losses.push(r.loss) },
      );
      expect(losses[3]!).toBeLessThan(losses[0]!);
      const unmoved = [...method.trainable].filter(([n, p]) => Buffer.compare(Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength), Buffer.from(before.get(n)!.buffer)) === 0);
      expect(unmoved.map(([n]) => n)).toEqual([]);
      // Full fine-tuning trains the base's own arrays; every other method must leave them alone.
      if (name !== "full") expect(baseDigest(base)).toBe(digest);
      expect(summary.trainableParameters).toBe(entry.trainableCount(base.model.config, method));
      trained = await logitsOf(methodScoring(method));
      expect(maxAbsDiff(trained, untrained)).toBeGreaterThan(1e-4);
    }, 120_000);

    it("save → load gives the same logits", async () => {
      expect(trained).toBeDefined();
      method.save(out());
      const back = await logitsOf(entry.reload(base, out()));
      expect(maxAbsDiff(back, trained)).toBeLessThan(1e-4);
    });

    itWhen(entry.merges)("merged for deployment, it gives the same logits", async () => {
      const merged = deployedModel(base, out());
      expect(maxAbsDiff(await logitsOf(baseScoring(merged.base)), trained)).toBeLessThan(2e-4);
    });
  });
});

// ReALLM's low-rank gradients against finite differences of the same graph's loss, on the matrix's
// ReALLM base (reallm.test.ts only checks that they are non-zero; a random tiny model's q/k factors
// get gradients near 1e-6, below what float32 differences resolve, so this uses the trained model).
// Directional derivatives: along the whole gradient, along random directions, and along each
// factor's own gradient for the first and last layer.
describe("ReALLM low-rank gradients match finite differences", () => {
  const B = 2;
  const T = 32;
  let method: TuningMethod;
  let compiled: CompiledGraph;
  let names: string[];
  let batch: Record<string, HostTensor>;

  beforeAll(async () => {
    const base = bases.get("reallm")!;
    if (base.kind !== "quantized") throw new Error("the ReALLM base is quantized");
    method = reallmMethod(base.model, { blockSteps: 0, blockLr: 1e-3, blockBatch: 2, blockSamples: 4 });
    names = [...method.trainable.keys()];
    const { graph, outputs } = buildLmTrainGraph(base.model.config, method.params(new Graph(), "train"), B, T, names);
    compiled = await CompiledGraph.compile(graph, outputs, { threads: 2 });
    batch = {
      [IDS]: { data: BigInt64Array.from(ref.input_ids.flatMap((r) => r.slice(0, T)), BigInt), shape: [B, T] },
      [TARGETS]: { data: BigInt64Array.from(ref.targets.flatMap((r) => r.slice(0, T)), BigInt), shape: [B * T] },
    };
  }, 120_000);
  afterAll(async () => compiled?.release());

  const lossNow = async () => (await compiled.run({ ...Object.fromEntries(method.trainable), ...batch }, ["loss"])).loss!.data[0] as number;

  /** (L(θ + h·d) − L(θ − h·d)) / 2h, d over every factor at once (unit length). */
  async function directional(d: ReadonlyMap<string, Float32Array>, h: number): Promise<number> {
    const keep = new Map([...d.keys()].map((n) => [n, Float32Array.from(method.trainable.get(n)!.data)]));
    const at = async (s: number) => {
      for (const [n, dir] of d) {
        const p = method.trainable.get(n)!.data;
        const k = keep.get(n)!;
        for (let i = 0; i < p.length; i++) p[i] = k[i]! + s * dir[i]!;
      }
      return lossNow();
    };
    const up = await at(h);
    const down = await at(-h);
    for (const [n, k] of keep) method.trainable.get(n)!.data.set(k);
    return (up - down) / (2 * h);
  }

  it("along the gradient, random directions, and each factor of the first and last layer (2 %)", async () => {
    const out = await compiled.run({ ...Object.fromEntries(method.trainable), ...batch });
    const grads = new Map(names.map((n) => [n, Float32Array.from(out[gradName(n)]!.data as Float32Array)]));
    const normOf = (m: ReadonlyMap<string, Float32Array>) => Math.sqrt([...m.values()].reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
    const scaled = (m: ReadonlyMap<string, Float32Array>, by: number) => new Map([...m].map(([n, g]) => [n, g.map((x) => x * by)]));
    const total = normOf(grads);
    expect(total).toBeGreaterThan(1e-3);
    expect(Math.abs((await directional(scaled(grads, 1 / total), 1e-2)) - total) / total).toBeLessThan(0.02);

    const rng = new Rng(3);
    for (let k = 0; k < 2; k++) {
      const raw = new Map([...grads].map(([n, g]) => {
        const d = new Float32Array(g.length);
        rng.fillNormal(d, 1);
        return [n, d];
      }));
      const dir = scaled(raw, 1 / normOf(raw));
      let analytic = 0;
      for (const [n, d] of dir) d.forEach((x, i) => (analytic += x * grads.get(n)![i]!));
      expect(Math.abs((await directional(dir, 1e-2)) - analytic), `random direction ${k}`).toBeLessThan(0.02 * total);
    }

    const last = base().config.numLayers - 1;
    for (const n of names.filter((m) => m.startsWith("model.layers.0.") || m.startsWith(`model.layers.${last}.`))) {
      const g = grads.get(n)!;
      const own = normOf(new Map([[n, g]]));
      const numeric = await directional(new Map([[n, g.map((x) => x / own)]]), 1e-2);
      expect(Math.abs(numeric - own) / own, n).toBeLessThan(0.02);
    }
  }, 120_000);

  const base = () => bases.get("reallm")!.model;
});
