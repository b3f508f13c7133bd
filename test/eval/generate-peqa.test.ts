// Generation with a PEQA method's own scoring (scales as graph inputs, as the page generates with
// the adapter it is training): the generator folds the tuned scales into MatMulNBits constants
// once. The folded graph's logits equal the scale-input graph's (exact at accuracy level 0, per
// channel and in groups), the generator's tokens equal those of the deployed model (scales merged
// into the layers, `slimtune generate --adapter`), and scales changed after the generator was
// built are picked up, never stale.

import { beforeAll, describe, expect, it } from "vitest";
import { CompiledGraph, Graph, type HostTensor } from "../../src/engine/index.js";
import { Generator } from "../../src/eval/generate.js";
import { withScales } from "../../src/export/merged.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { methodScoring } from "../../src/methods/registry.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { LOGITS, buildKvGraph } from "../../src/models/llama/kv-graph.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { QuantizedParams } from "../../src/models/parts/quantized-params.js";
import type { ParamSource } from "../../src/arch/params.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { emptyPast, kvStepFeeds, pastFromPresent } from "../helpers/kv-step.js";
import { REF_MODEL } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";

/** Scales as a tuning run leaves them: every one moved by a different few per cent. */
function tune(method: TuningMethod, amount: number): void {
  let k = 0;
  for (const p of method.trainable.values()) for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! * (1 + amount * Math.sin(++k));
}

/** Prefill `prompt`, then 4 greedy-fed steps of fixed tokens; every run's logits. */
async function stepLogits(config: LlamaModel["config"], params: ParamSource, feeds: Record<string, HostTensor>, prompt: number[]): Promise<Float32Array[]> {
  const kv = buildKvGraph(config, params, { batch: 1, seq: "dynamic", past: true, logits: "last", fused: true });
  const step = await CompiledGraph.compile(kv.graph, kv.outputs);
  const run = (tokens: number[], from: number, past: Record<string, HostTensor>) => step.run({ ...feeds, ...past, ...kvStepFeeds(tokens, from) });
  let out = await run(prompt, 0, emptyPast(kv.kvHeads, config.headDim));
  const all = [out[LOGITS]!.data as Float32Array];
  for (const [s, token] of [11, 250, 3000, 42].entries()) {
    const past = pastFromPresent(out, kv.kvHeads.length);
    out = await run([token], prompt.length + s, past);
    all.push(out[LOGITS]!.data as Float32Array);
  }
  await step.release();
  return all;
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("generation with a PEQA method's scoring", () => {
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  let prompt: number[];
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
    prompt = tokenizer.encodePrompt(PROMPT);
  });

  for (const groupSize of ["channel", 64] as const) {
    it(`folds the tuned scales exactly (groups: ${groupSize})`, async () => {
      const qm: QuantizedModel = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize, symmetric: false });
      const method = peqaMethod(qm);
      tune(method, 0.05);
      const scoring = methodScoring(method);
      const inputs = scoring.params(new Graph());
      expect(inputs).toBeInstanceOf(QuantizedParams);
      expect((inputs as QuantizedParams).takesScaleInputs).toBe(true);
      const want = await stepLogits(model.config, inputs, scoring.weightFeeds(), prompt);
      const folded = (inputs as QuantizedParams).folded(new Graph(), scoring.weightFeeds(), 0);
      expect(folded.takesScaleInputs).toBe(false);
      const got = await stepLogits(model.config, folded, {}, prompt);
      got.forEach((l, s) => expect(maxDiff(l, want[s]!), `run ${s}`).toBeLessThan(2e-4));
      // The untuned scales give other logits: the fold reads the tuned ones.
      const untuned = await stepLogits(model.config, new QuantizedParams(new Graph(), qm, { fused: true }), {}, prompt);
      expect(maxDiff(untuned[0]!, want[0]!)).toBeGreaterThan(1e-2);
    });
  }

  it("generates the deployed model's tokens, and follows scales changed after it was built", async () => {
    const qm = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });
    const method = peqaMethod(qm);
    tune(method, 0.05);
    const generator = await Generator.create(methodScoring(method), tokenizer);
    const deployed = async () => {
      const g = await Generator.create(baseScoring({ kind: "quantized", model: withScales(qm, method) }, { generation: true }), tokenizer);
      const r = await g.generate(prompt, { maxNewTokens: 12, temperature: 0, eosTokenIds: [] });
      await g.release();
      return r.ids;
    };
    const opts = { maxNewTokens: 12, temperature: 0, eosTokenIds: [] };
    const before = await generator.generate(prompt, opts);
    expect(before.ids).toEqual(await deployed());
    tune(method, 0.4); // training went on
    const after = await generator.generate(prompt, opts);
    expect(after.ids).toEqual(await deployed());
    expect(after.ids).not.toEqual(before.ids);
    await generator.release();
  });
});
