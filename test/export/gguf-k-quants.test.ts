// GGUF k-quants Q2_K … Q6_K (ggml-common.h's super-block layouts) written by slimtune and run by
// llama.cpp (node-llama-cpp): llama.cpp's perplexity on the file matches slimtune's on the same file
// read back by slimtune's decoder — so writer and reader both lay the blocks out as llama.cpp does.
// (Byte-level equality with ggml's own quantizers: gguf-ggml-reference.test.ts.)

import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { tokenizeFile } from "../../src/data/text-file.js";
import { GraphCache } from "../../src/engine/index.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { GGML_TYPES, decodeRows, encodeRows } from "../../src/formats/gguf/ggml-types.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { baseScoring } from "../../src/models/base-scoring.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadBase } from "../../src/models/load.js";
import { llamaPerplexity } from "../helpers/llama-cpp.js";
import { REF_MODEL, WIKITEXT_TEST, scratchDir } from "../helpers/paths.js";

describe("GGUF k-quants", () => {
  const dir = scratchDir("gguf-k");
  let model: LlamaModel;
  let tokens: Int32Array;
  beforeAll(async () => {
    model = LlamaModel.load(REF_MODEL);
    tokens = tokenizeFile(WIKITEXT_TEST, await loadTokenizer(REF_MODEL), 1024);
  });

  it("blocks decode within a quantization step of the values", () => {
    const x = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 13) / 4) - 0.2);
    for (const [type, levels] of [[GGML_TYPES.Q2_K, 3], [GGML_TYPES.Q3_K, 7], [GGML_TYPES.Q4_K, 15], [GGML_TYPES.Q5_K, 31], [GGML_TYPES.Q6_K, 63]] as const) {
      const back = decodeRows(type, encodeRows(type, x), x.length);
      const amax = Math.max(...x.map(Math.abs));
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(back[i]! - x[i]!));
      expect(err, type.name).toBeLessThan((2 * amax) / levels);
      expect(err, type.name).toBeGreaterThan(0);
    }
  });

  it("llama.cpp's perplexity on the file is slimtune's on the file read back (within 1 %)", async () => {
    const fallback = { q3_k: "Q4_0", q4_k: "Q5_0", q5_k: "Q5_1" } as const;
    for (const dtype of ["q3_k", "q4_k", "q5_k"] as const) {
      const file = path.join(dir, `ref-${dtype}.gguf`);
      const r = exportGguf({ kind: "float", model }, REF_MODEL, file, { dtype });
      // Every matrix of the type (as llama-quantize --pure), but rows of 704 (down_proj) are not whole
      // super-blocks: llama.cpp's fallback type, as llama-quantize does.
      expect(r.types[dtype.toUpperCase() as "Q4_K"], dtype).toBe(6 * 6 + 1);
      expect(r.types[fallback[dtype]], dtype).toBe(6);
      const back = loadBase(file);
      const ours = await perplexity(baseScoring(back), new GraphCache(), tokens, { ctx: 256 });
      const theirs = await llamaPerplexity(file, tokens, 256);
      console.log(`${dtype}: slimtune on the file ${ours.perplexity.toFixed(3)}, llama.cpp ${theirs.toFixed(3)}`);
      expect(Math.abs(theirs / ours.perplexity - 1), dtype).toBeLessThan(0.01);
    }
  });
});
