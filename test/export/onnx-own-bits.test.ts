// ONNX export keeps what the model is (issue 17, item 1): with no --dtype a 4-bit model whose layers
// MatMulNBits runs is written q4 with its own codes (transformers.js generates slimtune's tokens); a
// model no ONNX dtype holds (NF4) is E_ARG naming --dtype; 3-bit layers are written as 4-bit codes
// and said so; an asked-for dtype keeps every layer that fits within its bits and records each one it
// re-rounds.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import { Generator } from "../../src/eval/generate.js";
import { groupChanges } from "../../src/export/changes.js";
import { generationScoring } from "../../src/export/deploy.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantSpec } from "../../src/quant/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 12;

describe("export --format onnx keeps a quantized model's own bits", () => {
  const dir = scratchDir("onnx-own");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;
  const q4: QuantSpec = { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false };
  const q3: QuantSpec = { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false };
  beforeAll(async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
  });

  it("a 4-bit g32 model: q4 by default, its codes kept, transformers.js generates slimtune's tokens", async () => {
    const base: LoadedBase = { kind: "quantized", model: quantizeModel(model, q4) };
    const r = await exportOnnx(base, REF_MODEL, path.join(dir, "own-q4"), {});
    expect(r.dtype).toBe("q4");
    expect(r.changes).toEqual([]);
    const g = await Generator.create(generationScoring(base), tokenizer);
    const ours = await g.generate(PROMPT, { maxNewTokens: N, temperature: 0, eosTokenIds: [] });
    await g.release();
    const tok = await AutoTokenizer.from_pretrained("own-q4");
    const lm = await AutoModelForCausalLM.from_pretrained("own-q4", { dtype: "q4", device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    expect(out.tolist()[0]!.map(Number)).toEqual([...ours.promptIds, ...ours.ids]);
  });

  it("NF4 layers: E_ARG naming --dtype; --dtype q2 keeps no 3/4-bit layer and records each re-rounded one; 3-bit layers go into 4-bit codes", async () => {
    const nf4: LoadedBase = { kind: "quantized", model: quantizeModel(model, { scheme: "nf4", bits: 4, groupSize: 64, symmetric: true }) };
    await expect(exportOnnx(nf4, REF_MODEL, path.join(dir, "refused"), {})).rejects.toThrow(/cannot be written for transformers\.js at their own bits: nf4 4-bit g64 \(layers 0–5 .*--dtype q4 or q8.*--dtype fp32/);
    // Mixed: MLP layers 3-bit, attention 4-bit g32.
    const mixed: LoadedBase = { kind: "quantized", model: quantizeModel(model, (p) => (p.includes(".mlp.") ? q3 : q4)) };
    const own = await exportOnnx(mixed, REF_MODEL, path.join(dir, "mixed-own"), {});
    expect(groupChanges(own.changes).map((g) => [own.dtype, g.kind, g.from, g.tensors])).toEqual([["q4", "widened", "3-bit g64 asymmetric", "layers 0–5 gate_proj, up_proj, down_proj"]]);
    const r = await exportOnnx(mixed, REF_MODEL, path.join(dir, "mixed-q2"), { dtype: "q2" });
    const groups = groupChanges(r.changes);
    expect(groups.map((g) => [g.kind, g.from, g.to])).toEqual([
      ["re-rounded", "4-bit g32 asymmetric", "MatMulNBits 2-bit g32 symmetric"],
      ["re-rounded", "3-bit g64 asymmetric", "MatMulNBits 2-bit g32 symmetric"],
      // GatherBlockQuantized runs 4 or 8 bits: q2's table is 4-bit.
      ["quantized", "float", "GatherBlockQuantized 4-bit g32 symmetric (also the tied LM head through MatMulNBits, one tensor)"],
    ]);
    const up = await exportOnnx(mixed, REF_MODEL, path.join(dir, "mixed-fp32"), { dtype: "fp32" });
    expect(groupChanges(up.changes).map((g) => g.kind)).toEqual(["upcast", "upcast"]);
  });
});
