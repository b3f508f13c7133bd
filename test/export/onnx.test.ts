// ONNX export checked by the real reader: @huggingface/transformers (transformers.js) in Node, local
// files only. Its greedy generate equals `slimtune generate` token for token: float (fp32), 4-bit
// (q4, the model's own codes, and q4 from float, with the embedding/LM head quantized), q8, fp16 weights, and a pruned model whose layers
// have different head counts.

import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import { Generator } from "../../src/eval/generate.js";
import { deployedModel, generationScoring } from "../../src/export/deploy.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { type OnnxDtype, exportOnnx } from "../../src/export/onnx/index.js";
import { roundToF16 } from "../../src/core/f16.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { quantizeTables } from "../../src/quant/tables.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 24;

/** The quantized model with its embedding/LM head quantized as `--dtype q4`/`q8` writes them. */
function withTables(base: LoadedBase, bits: 4 | 8): LoadedBase {
  if (base.kind !== "quantized") throw new Error("a quantized model");
  return { kind: "quantized", model: { ...base.model, tables: quantizeTables(base.model.config, base.model.dense, bits)! } };
}

describe("transformers.js loads the export and generates what slimtune generates", () => {
  const dir = scratchDir("onnx");
  let model: LlamaModel;
  let tokenizer: TextTokenizer;

  beforeAll(async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    model = LlamaModel.load(REF_MODEL);
    tokenizer = await loadTokenizer(REF_MODEL);
  });

  async function slimtune(base: LoadedBase, adapter?: string): Promise<number[]> {
    const g = await Generator.create(generationScoring(base, adapter), tokenizer);
    const r = await g.generate(PROMPT, { maxNewTokens: N, temperature: 0, eosTokenIds: [] });
    await g.release();
    return [...r.promptIds, ...r.ids];
  }

  async function transformersJs(base: LoadedBase, name: string, dtype: OnnxDtype): Promise<number[]> {
    await exportOnnx(base, REF_MODEL, path.join(dir, name), { dtype });
    const tok = await AutoTokenizer.from_pretrained(name);
    const lm = await AutoModelForCausalLM.from_pretrained(name, { dtype, device: "cpu" });
    const inputs = tok(PROMPT);
    // min_new_tokens keeps generating past an end-of-sequence token, as slimtune with no EOS ids.
    const out = (await lm.generate({ ...inputs, max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    return out.tolist()[0]!.map(Number);
  }

  it("fp32", async () => {
    const base: LoadedBase = { kind: "float", model };
    expect(await transformersJs(base, "ref-fp32", "fp32")).toEqual(await slimtune(base));
  });

  it("q4 from a 4-bit model: its own codes through MatMulNBits, the embedding/LM head quantized as asked", async () => {
    const base: LoadedBase = { kind: "quantized", model: quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false }) };
    expect(await transformersJs(base, "ref-q4", "q4")).toEqual(await slimtune(withTables(base, 4)));
  });

  it("q4 and q8 from the float model (round-to-nearest, groups of 32, symmetric)", async () => {
    for (const [dtype, bits] of [["q4", 4], ["q8", 8]] as const) {
      const quantized: LoadedBase = { kind: "quantized", model: quantizeModel(model, { scheme: "rtn", bits, groupSize: 32, symmetric: true }) };
      expect(await transformersJs({ kind: "float", model }, `ref-float-${dtype}`, dtype), dtype).toEqual(await slimtune(withTables(quantized, bits)));
    }
  });

  it("fp16 weights: the model with its weights rounded to half precision", async () => {
    const rounded = new LlamaModel(model.config, new Map([...model.weights].map(([k, w]) => [k, { data: w.data.map(roundToF16), shape: w.shape }])), model.sourceDir);
    expect(await transformersJs({ kind: "float", model }, "ref-fp16", "fp16")).toEqual(await slimtune({ kind: "float", model: rounded }));
  });

  it("adapters merged: PEQA scales into the 4-bit weights (q4), LoRA into float weights (fp32)", async () => {
    const qm = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false });
    const peqa = peqaMethod(qm);
    for (const t of peqa.trainable.values()) t.data.forEach((v, i) => (t.data[i] = v * (1 + 0.05 * Math.sin(i))));
    const peqaDir = path.join(dir, "peqa-adapter");
    peqa.save(peqaDir);
    const qbase: LoadedBase = { kind: "quantized", model: qm };
    const tuned = await slimtune(withTables(qbase, 4), peqaDir);
    expect(tuned).not.toEqual(await slimtune(withTables(qbase, 4)));
    expect(await transformersJs(deployedModel(qbase, peqaDir).base, "ref-peqa-q4", "q4")).toEqual(tuned);

    const lora = loraForDenseModel(model, { rank: 8, alpha: 16, seed: 3 });
    let k = 0;
    for (const [name, t] of lora.trainable) if (name.includes("lora_B")) t.data.forEach((_, i) => (t.data[i] = 0.02 * Math.sin(++k * 0.7)));
    const loraDir = path.join(dir, "lora-adapter");
    lora.save(loraDir);
    const fbase: LoadedBase = { kind: "float", model };
    expect(await transformersJs(deployedModel(fbase, loraDir).base, "ref-lora-fp32", "fp32")).toEqual(await slimtune(fbase, loraDir));
  });

  it("a pruned model with per-layer head counts (transformers.js takes cache shapes from the graph)", async () => {
    const base: LoadedBase = { kind: "float", model: prunedRefModel() };
    expect(await transformersJs(base, "pruned-fp32", "fp32")).toEqual(await slimtune(base));
  });
});
