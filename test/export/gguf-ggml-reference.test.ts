// slimtune's ggml codecs against ggml itself (node-llama-cpp's libggml-base.so through ctypes): every
// type slimtune writes must encode as quantize_row_*_ref does — byte for byte, so a slimtune file is
// the file llama-quantize writes without an importance matrix — and decode as dequantize_row_* does.

import { describe, expect, it } from "vitest";
import { GGML_TYPES, type GgmlTypeName, decodeRows, encodeRows } from "../../src/formats/gguf/ggml-types.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { ggmlBaseLibrary, ggmlDequantize, ggmlQuantize } from "../helpers/ggml-reference.js";
import { REF_MODEL } from "../helpers/paths.js";

const lib = ggmlBaseLibrary();
const TYPES: GgmlTypeName[] = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"];

/** Gaussian-ish values with outliers, one-signed super-blocks, a zero sub-block and a zero super-block. */
function awkwardValues(n: number): Float32Array {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const x = Float32Array.from({ length: n }, (_, i) => {
    const g = (rnd() + rnd() + rnd() - 1.5) * 0.05 * (1 + ((i >> 8) % 5));
    return i % 997 === 0 ? g * 8 : (i >> 8) % 17 === 3 ? Math.abs(g) : (i >> 8) % 19 === 4 ? -Math.abs(g) : g;
  });
  x.fill(0, 256 * 5, 256 * 5 + 16);
  x.fill(0, 256 * 7, 256 * 8);
  return x;
}

describe.skipIf(!lib)("ggml codecs equal ggml's own", () => {
  const values = awkwardValues(256 * 40);
  // Rows of a trained model too: the query projection of layer 0, 256 rows of 256.
  const trained = LlamaModel.load(REF_MODEL).weights.get("model.layers.0.self_attn.q_proj.weight")!.data.slice(0, 256 * 64);

  for (const name of TYPES) {
    it(`${name}: encoder byte for byte, decoder value for value`, () => {
      for (const x of [values, trained]) {
        const ours = encodeRows(GGML_TYPES[name], x);
        const theirs = ggmlQuantize(lib!, name, x);
        expect(ours.length).toBe(theirs.length);
        let differing = 0;
        for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) differing++;
        expect(differing, `${name}: bytes differing from quantize_row_${name}_ref`).toBe(0);
        const decoded = decodeRows(GGML_TYPES[name], ours, x.length);
        const reference = ggmlDequantize(lib!, name, ours, x.length);
        let unequal = 0;
        for (let i = 0; i < x.length; i++) if (decoded[i] !== reference[i]) unequal++;
        expect(unequal, `${name}: values differing from dequantize_row_${name}`).toBe(0);
      }
    });
  }
});
