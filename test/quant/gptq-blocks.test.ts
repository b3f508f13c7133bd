// GPTQ onto ggml's k-quant blocks (quant/gptq-blocks.ts with formats/gguf k-quants' grid): the codes
// are a real Q4_K / Q3_K tensor (the blocks decode to exactly the values GPTQ fed forward); with a
// diagonal Hessian there is no error to spread and the blocks are ggml's reference quantizer's, byte
// for byte; with correlated inputs GPTQ's output error ‖(W − Ŵ)X‖ is below the reference's.

import { afterAll, describe, expect, it } from "vitest";
import { GGML_TYPES, decodeRows, encodeRows } from "../../src/formats/gguf/ggml-types.js";
import { kQuantTarget } from "../../src/formats/gguf/k-quants.js";
import { defaultGptqSettings, prepareHessian } from "../../src/quant/gptq.js";
import { gptqQuantizeBlocks } from "../../src/quant/gptq-blocks.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";

const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());

const n = 8;
const k = 512;
let seed = 5;
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff - 0.5;
const w = Float32Array.from({ length: n * k }, () => 0.1 * (rnd() + rnd() + rnd()));

/** Correlated inputs X [rows, k] (each column mixes its neighbours) and H = 2XᵀX/rows. */
function correlatedInputs(rows: number): { x: Float64Array; h: Float64Array } {
  const base = Float64Array.from({ length: rows * k }, () => rnd());
  const x = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) for (let c = 0; c < k; c++) x[r * k + c] = base[r * k + c]! + 0.8 * (base[r * k + ((c + 1) % k)]! + base[r * k + ((c + 7) % k)]!) * (1 + (c % 5));
  const h = new Float64Array(k * k);
  for (let r = 0; r < rows; r++) for (let a = 0; a < k; a++) {
    const xa = x[r * k + a]!;
    for (let b = 0; b < k; b++) h[a * k + b]! += (2 * xa * x[r * k + b]!) / rows;
  }
  return { x, h };
}

function outputError(x: Float64Array, rows: number, q: Float32Array): number {
  let e = 0;
  for (let r = 0; r < rows; r++) for (let o = 0; o < n; o++) {
    let d = 0;
    for (let c = 0; c < k; c++) d += (w[o * k + c]! - q[o * k + c]!) * x[r * k + c]!;
    e += d * d;
  }
  return e;
}

describe("GPTQ onto k-quant blocks", () => {
  it("a diagonal Hessian leaves nothing to spread: the blocks are ggml's reference Q4_K and Q3_K, byte for byte", async () => {
    const h = new Float64Array(k * k);
    for (let i = 0; i < k; i++) h[i * k + i] = 1;
    const prep = prepareHessian(h, k, defaultGptqSettings);
    for (const name of ["Q4_K", "Q3_K"] as const) {
      const r = await gptqQuantizeBlocks(w, n, k, prep, kQuantTarget(name), gemm);
      expect(Buffer.from(r.blocks).equals(Buffer.from(encodeRows(GGML_TYPES[name], w))), name).toBe(true);
    }
  });

  it("with correlated inputs: the blocks decode to exactly what GPTQ fed forward, and ‖(W − Ŵ)X‖ is below the reference's", async () => {
    const rows = 1024;
    const { x, h } = correlatedInputs(rows);
    const prep = prepareHessian(h, k, defaultGptqSettings);
    for (const name of ["Q4_K", "Q3_K"] as const) {
      const r = await gptqQuantizeBlocks(w, n, k, prep, kQuantTarget(name), gemm);
      const decoded = decodeRows(GGML_TYPES[name], r.blocks, n * k);
      let unequal = 0;
      for (let i = 0; i < n * k; i++) if (decoded[i] !== r.values[i]) unequal++;
      expect(unequal, name).toBe(0);
      const reference = decodeRows(GGML_TYPES[name], encodeRows(GGML_TYPES[name], w), n * k);
      const ours = outputError(x, rows, r.values);
      const theirs = outputError(x, rows, reference);
      console.log(`${name}: ‖(W − Ŵ)X‖² GPTQ ${ours.toExponential(3)}, ggml's reference ${theirs.toExponential(3)} (${(ours / theirs).toFixed(3)}×)`);
      expect(ours, name).toBeLessThan(0.9 * theirs);
    }
  });

  it("refuses act-order and rows that are not whole super-blocks", async () => {
    const h = new Float64Array(k * k);
    for (let i = 0; i < k; i++) h[i * k + i] = 1 + i;
    await expect(gptqQuantizeBlocks(w, n, k, prepareHessian(h, k, { ...defaultGptqSettings, actOrder: true }), kQuantTarget("Q4_K"), gemm)).rejects.toThrow(/act-order/);
    const h2 = new Float64Array(320 * 320);
    for (let i = 0; i < 320; i++) h2[i * 320 + i] = 1;
    await expect(gptqQuantizeBlocks(w.subarray(0, n * 320), n, 320, prepareHessian(h2, 320, defaultGptqSettings), kQuantTarget("Q4_K"), gemm)).rejects.toThrow(/not whole Q4_K super-blocks/);
  });
});
