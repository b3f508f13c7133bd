// The model paths ref-llama-5m never runs, against PyTorch float32 references in ../shared/models:
// tiny-qwen2-variant (q/k/v biases, an untied head, rope_theta 1e6) and tiny-llama3-rope (θ 5e5 with
// Llama 3's frequency scaling). Each reference.json records, under `sensitivity`, how far the loss and
// the logits move when the feature is left out; the tolerances here sit far inside those distances,
// so a graph that drops the biases, the untied head, θ or the scaling fails.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { buildLmTrainGraph, gradName, IDS, TARGETS } from "../../src/models/llama/lm-graphs.js";
import { DenseParams } from "../../src/models/llama/params.js";
import { SHARED } from "../helpers/paths.js";
import { transformersName } from "../helpers/torch-peer.js";

interface VariantReference {
  input_ids: number[][];
  targets: number[][];
  loss: number;
  logits: Array<{ batch: number; position: number; first64: number[] }>;
  grad_norms: Record<string, number>;
  sensitivity: { without_biases_or_scaling: { loss: number; max_abs_logit_change: number } };
}

// float32 sums in another order over 2 layers: the loss agrees to ~1e-6, logits to ~1e-5.
const LOSS_ATOL = 5e-5;
const LOGIT_ATOL = 1e-3;
const NORM_RTOL = 1e-3;

for (const fixture of ["tiny-qwen2-variant", "tiny-llama3-rope"]) {
  describe(`${fixture} matches PyTorch`, () => {
    const dir = path.join(SHARED, "models", fixture);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, "reference.json"), "utf8")) as VariantReference;
    const without = ref.sensitivity.without_biases_or_scaling;
    let out: Record<string, HostTensor>;
    let names: string[];

    beforeAll(async () => {
      const model = LlamaModel.load(dir);
      names = [...model.weights.keys()];
      const B = ref.input_ids.length;
      const T = ref.input_ids[0]!.length;
      const params = new DenseParams(new Graph(), model.weights, new Set(names));
      const { graph, outputs } = buildLmTrainGraph(model.config, params, B, T, names, { logits: true });
      const compiled = await CompiledGraph.compile(graph, outputs);
      const feeds: Record<string, HostTensor> = {
        [IDS]: { data: BigInt64Array.from(ref.input_ids.flat(), BigInt), shape: [B, T] },
        [TARGETS]: { data: BigInt64Array.from(ref.targets.flat(), BigInt), shape: [B * T] },
      };
      for (const [name, w] of model.weights) feeds[name] = w;
      out = await compiled.run(feeds);
    });

    it("the tolerances are far inside what leaving the feature out moves", () => {
      expect(Math.abs(without.loss - ref.loss)).toBeGreaterThan(50 * LOSS_ATOL);
      expect(without.max_abs_logit_change).toBeGreaterThan(50 * LOGIT_ATOL);
    });

    it(`loss within ${LOSS_ATOL}`, () => {
      expect(Math.abs((out.loss!.data[0] as number) - ref.loss)).toBeLessThan(LOSS_ATOL);
    });

    it(`logits rows within ${LOGIT_ATOL}`, () => {
      const T = ref.input_ids[0]!.length;
      const V = out.logits!.shape[1]!;
      for (const { batch, position, first64 } of ref.logits) {
        const row = (batch * T + position) * V;
        let worst = 0;
        first64.forEach((e, j) => (worst = Math.max(worst, Math.abs((out.logits!.data[row + j] as number) - e))));
        expect(worst, `(${batch}, ${position})`).toBeLessThan(LOGIT_ATOL);
      }
    });

    it(`every parameter's gradient norm within ${NORM_RTOL} relative`, () => {
      const expected = new Map(Object.entries(ref.grad_norms).map(([peer, norm]) => [transformersName(peer), norm]));
      expect([...expected.keys()].sort()).toEqual([...names].sort());
      for (const [name, norm] of expected) {
        let s = 0;
        for (const x of out[gradName(name)]!.data as Float32Array) s += x * x;
        expect(Math.abs(Math.sqrt(s) - norm) / norm, name).toBeLessThan(NORM_RTOL);
      }
    });
  });
}
