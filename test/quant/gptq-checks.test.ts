// GPTQ paths the equality tests in gptq.test.ts do not reach (found by mutation testing): the loss
// estimate it reports, dead columns, escalating dampening for a Hessian that is not positive
// definite, and its argument checks.

import { afterAll, describe, expect, it } from "vitest";
import { dequantize, quantizeLinear } from "../../src/quant/kinds/index.js";
import { defaultGptqSettings, gptqQuantize, prepareHessian } from "../../src/quant/gptq.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import type { QuantSpec } from "../../src/quant/types.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { gaussian } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());
const spec: QuantSpec = { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false };
const opts = { settings: defaultGptqSettings, gemm, layer: "L" };

/** H = c·I: uncorrelated inputs, so GPTQ has nothing to propagate and equals RTN. */
const diagonal = (k: number, c: number) => Float64Array.from({ length: k * k }, (_, i) => (i % (k + 1) === 0 ? c : 0));

describe("GPTQ", () => {
  it("defaults to the reference's settings: block 128, 1 % dampening, natural order", () => {
    expect(defaultGptqSettings).toEqual({ blockSize: 128, dampPercent: 0.01, actOrder: false });
  });

  it("with uncorrelated inputs equals RTN and reports loss Σ(w − q)² (1 + λ)/2, λ = 1 % of the diagonal", async () => {
    const n = 6;
    const k = 16;
    const w = gaussian(n * k, 4);
    const prep = prepareHessian(diagonal(k, 2), k, defaultGptqSettings);
    const r = await gptqQuantize(w, n, k, prep, spec, opts);
    const rtn = quantizeLinear(w, n, k, spec);
    expect(Array.from(r.layer.codes)).toEqual(Array.from(rtn.kind === "rtn" ? rtn.codes : []));
    const q = dequantize(r.layer);
    let sq = 0;
    w.forEach((v, i) => (sq += (v - q[i]!) ** 2));
    // U = (H + λI)^(-1/2) = 1/√(2 + 0.02), so each column adds diff² · 2.02 / 2.
    expect(r.loss).toBeCloseTo((sq * 2.02) / 2, 4);
    expect(r.loss).toBeGreaterThan(0);
  });

  it("zeroes the weights of a column whose input is always zero (H_kk = 0)", async () => {
    const n = 4;
    const k = 8;
    const h = diagonal(k, 1);
    h[3 * k + 3] = 0;
    const prep = prepareHessian(h, k, defaultGptqSettings);
    expect(Array.from(prep.dead)).toEqual([3]);
    const q = dequantize((await gptqQuantize(gaussian(n * k, 9).map((v) => v + 3), n, k, prep, spec, opts)).layer);
    for (let r = 0; r < n; r++) expect(Math.abs(q[r * k + 3]!)).toBeLessThan(0.3);
    for (let r = 0; r < n; r++) expect(q[r * k + 2]!).toBeGreaterThan(1);
  });

  it("raises the dampening until H + λI factors, and refuses one that does not factor at 50 %", () => {
    // Eigenvalues 1 ± 1.03 with diagonal mean 1: needs λ > 0.03, found at 4 %.
    const h = Float64Array.from([1, 1.03, 1.03, 1]);
    expect(prepareHessian(h, 2, defaultGptqSettings).dampPercent).toBeCloseTo(0.04, 12);
    expectSlimtuneError(() => prepareHessian(Float64Array.from([1, 3, 3, 1]), 2, defaultGptqSettings, "L"), "E_ARG", "Hessian of L is not positive definite even with 50 % dampening");
  });

  it("refuses a block size that is not a positive integer", () => {
    for (const blockSize of [0, 1.5]) {
      expectSlimtuneError(() => prepareHessian(diagonal(2, 1), 2, { ...defaultGptqSettings, blockSize }), "E_ARG", `GPTQ block size ${blockSize} must be a positive integer`);
    }
    expect(prepareHessian(diagonal(2, 1), 2, { ...defaultGptqSettings, blockSize: 1 }).k).toBe(2);
  });

  it("refuses NF4, a weight of the wrong size, a block size that splits groups, and non-finite weights", async () => {
    const k = 8;
    const prep = prepareHessian(diagonal(k, 1), k, defaultGptqSettings);
    const wide = prepareHessian(diagonal(64, 1), 64, defaultGptqSettings);
    await expect(gptqQuantize(new Float32Array(2 * 64), 2, 64, wide, { scheme: "nf4", bits: 4, groupSize: 64, symmetric: true }, opts)).rejects.toThrow(/L asks for scheme "nf4"/);
    await expect(gptqQuantize(new Float32Array(3 * k), 4, k, prep, spec, opts)).rejects.toThrow(/weight of L has 24 values .* \[4, 8\] needs 32/);
    await expect(gptqQuantize(new Float32Array(2 * 64), 2, 64, wide, { ...spec, groupSize: 32 }, { ...opts, settings: { ...defaultGptqSettings, blockSize: 48 } })).rejects.toThrow(
      /block size 48 is not a multiple of group size 32 for L/,
    );
    const w = new Float32Array(4 * k);
    w[5] = Number.POSITIVE_INFINITY;
    await expect(gptqQuantize(w, 4, k, prep, spec, opts)).rejects.toThrow(/weight \[0, 5\] of L is Infinity/);
  });
});
