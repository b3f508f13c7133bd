// ONNX external data (issue 17, item 4): weights past protobuf's 2 GiB go to onnx/<file>.onnx_data,
// named in config.json's transformers.js_config.use_external_data_format, and transformers.js loads
// the pair. The threshold is lowered here so the 22 MB reference model takes that path.

import fs from "node:fs";
import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, env } from "@huggingface/transformers";
import { beforeAll, describe, expect, it } from "vitest";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const PROMPT = " The tower is 324 metres tall, about the same height as";
const N = 12;

describe("export --format onnx with external data", () => {
  const dir = scratchDir("onnx-external");
  let model: LlamaModel;
  beforeAll(() => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    model = LlamaModel.load(REF_MODEL);
  });

  async function generate(name: string, dtype: "fp32" | "q4"): Promise<number[]> {
    const tok = await AutoTokenizer.from_pretrained(name);
    const lm = await AutoModelForCausalLM.from_pretrained(name, { dtype, device: "cpu" });
    const out = (await lm.generate({ ...tok(PROMPT), max_new_tokens: N, min_new_tokens: N, do_sample: false })) as { tolist(): bigint[][] };
    await lm.dispose();
    return out.tolist()[0]!.map(Number);
  }

  for (const [dtype, base] of [
    ["fp32", () => ({ kind: "float", model }) as LoadedBase],
    ["q4", () => ({ kind: "quantized", model: quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 32, symmetric: false }) }) as LoadedBase],
  ] as const) {
    it(`${dtype}: weights in model${dtype === "q4" ? "_q4" : ""}.onnx_data, named in config.json; transformers.js generates the same tokens as from one file`, async () => {
      const inline = await exportOnnx(base(), REF_MODEL, path.join(dir, `${dtype}-inline`), {});
      const split = await exportOnnx(base(), REF_MODEL, path.join(dir, `${dtype}-split`), { externalDataAbove: 0 });
      expect(inline.dataFile).toBeUndefined();
      const file = path.basename(split.modelFile);
      expect(split.dataFile).toBe(path.join("onnx", `${file}_data`));
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, `${dtype}-split`, "config.json"), "utf8")) as Record<string, { use_external_data_format?: unknown }>;
      expect(cfg["transformers.js_config"]!.use_external_data_format).toEqual({ [file]: 1 });
      const modelBytes = fs.statSync(path.join(dir, `${dtype}-split`, split.modelFile)).size;
      const dataBytes = fs.statSync(path.join(dir, `${dtype}-split`, split.dataFile!)).size;
      // The model file keeps the graph and small tensors; the weights (page-aligned) are beside it.
      expect(modelBytes).toBeLessThan(0.05 * inline.bytes);
      expect(modelBytes + dataBytes).toBe(split.bytes);
      expect(split.bytes / inline.bytes).toBeLessThan(1.02);
      expect(await generate(`${dtype}-split`, dtype)).toEqual(await generate(`${dtype}-inline`, dtype));
    });
  }
});
