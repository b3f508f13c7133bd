// Every folder slimtune writes copies the same tokenizer files from its source (formats/tokenizer.ts
// TOKENIZER_FILES): sentencepiece and GPT-2-style files included, for float, quantized and pruned outputs.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { TOKENIZER_FILES } from "../../src/formats/tokenizer.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { defaultFineGatesOptions, fineGatesMethod } from "../../src/methods/finegates/index.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const extra = { "tokenizer.model": "sentencepiece bytes", "vocab.json": '{"a": 0}', "merges.txt": "#version: 0.2\na b\n", "special_tokens_map.json": "{}" };

describe("tokenizer files travel with every output", () => {
  let model: LlamaModel;
  beforeAll(() => {
    const src = path.join(scratchDir("tok-src"), "model");
    fs.cpSync(REF_MODEL, src, { recursive: true });
    for (const f of fs.readdirSync(src)) fs.chmodSync(path.join(src, f), 0o644);
    for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(src, name), text);
    model = LlamaModel.load(src);
  });

  const expectCopied = (dir: string) => {
    for (const name of TOKENIZER_FILES) {
      const from = path.join(model.sourceDir!, name);
      if (!fs.existsSync(from)) continue;
      expect(fs.existsSync(path.join(dir, name)), `${name} in ${dir}`).toBe(true);
      expect(fs.readFileSync(path.join(dir, name)).equals(fs.readFileSync(from)), name).toBe(true);
    }
    for (const name of Object.keys(extra)) expect(fs.existsSync(path.join(dir, name)), name).toBe(true);
  };

  it("full fine-tuning's model folder", () => {
    const out = path.join(scratchDir("tok-full"), "out");
    fullFineTuning(model).save(out);
    expectCopied(out);
  });

  it("FineGates' pruned folder", () => {
    const out = path.join(scratchDir("tok-fg"), "out");
    fineGatesMethod(model, { ...defaultFineGatesOptions, seed: 0 }).save(out);
    expectCopied(out);
  });

  it("a quantized folder", () => {
    const out = path.join(scratchDir("tok-q"), "out");
    saveQuantizedFolder(out, quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false }));
    expectCopied(out);
  });
});
