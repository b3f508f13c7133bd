// The README's GGUF outputs the other GGUF tests do not load in llama.cpp: F16, and Q4_0 quantized
// from a float model (gguf.test.ts loads Q4_0 only from a model already 4-bit). Each file is read
// back by slimtune (dequantized to float) and scored by both on the same tokens: llama.cpp must
// compute what slimtune computes from that same file.

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { tokenizeFile } from "../../src/data/text-file.js";
import { GraphCache } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadBase } from "../../src/models/load.js";
import { llamaPerplexity } from "../helpers/llama-cpp.js";
import { REF_MODEL, WIKITEXT_TEST, scratchDir } from "../helpers/paths.js";

const PPL_TOKENS = 1024;

describe("GGUF F16 and float → Q4_0 in llama.cpp", () => {
  const dir = scratchDir("gguf-dtypes");
  let model: LlamaModel;
  let tokens: Int32Array;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokens = tokenizeFile(WIKITEXT_TEST, await loadTokenizer(REF_MODEL), PPL_TOKENS);
  });

  const both = async (dtype: "f16" | "q4_0") => {
    const file = path.join(dir, `ref-${dtype}.gguf`);
    exportGguf({ kind: "float", model }, REF_MODEL, file, { dtype });
    const ours = (await perplexity(baseScoring(loadBase(file)), new GraphCache(), tokens, { ctx: 256 })).perplexity;
    const float = (await perplexity(baseScoring({ kind: "float", model }), new GraphCache(), tokens, { ctx: 256 })).perplexity;
    const theirs = await llamaPerplexity(file, tokens, 256);
    console.log(`${dtype}: llama.cpp ${theirs.toFixed(4)}, slimtune on the file ${ours.toFixed(4)}, slimtune float ${float.toFixed(4)}`);
    return { ours, theirs, float };
  };

  it("f16: llama.cpp's perplexity is slimtune's on the same file within 0.01 %", async () => {
    const { ours, theirs } = await both("f16");
    // Measured 3e-5 (llama.cpp rounds activations to f16 for the f16 products).
    expect(Math.abs(theirs / ours - 1)).toBeLessThan(1e-4);
  });

  it("q4_0 from float: llama.cpp's perplexity is slimtune's on the same file within 0.2 %, and the file is really 4-bit", async () => {
    const { ours, theirs, float } = await both("q4_0");
    // Measured 5e-4: llama.cpp multiplies q4_0 weights with activations rounded to q8_0.
    expect(Math.abs(theirs / ours - 1)).toBeLessThan(2e-3);
    expect(Math.abs(ours / float - 1)).toBeGreaterThan(1e-3); // the codes changed the model
  });
});
