// The blocked factorizations (linalg/blocked-cholesky.ts) against the flat loops of cholesky.ts:
// same factors up to rounding for widths that are and are not whole blocks, the same refusal of a
// matrix that is not positive definite (found in a later block), and prepareHessianBlocked giving
// GPTQ the same preparation — and so the same codes — as prepareHessian.

import { afterAll, describe, expect, it } from "vitest";
import { defaultGptqSettings, gptqQuantize, prepareHessian, prepareHessianBlocked } from "../../src/quant/gptq.js";
import { choleskyLowerBlocked, invertLowerBlocked, upperCholeskyOfInverseBlocked } from "../../src/quant/linalg/blocked-cholesky.js";
import { choleskyLowerInPlace, invertLower, upperCholeskyOfInverse } from "../../src/quant/linalg/cholesky.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { gaussian } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());

/** XᵀX/t + εI for X [t, k] Gaussian with uneven column scales: symmetric positive definite. */
function spd(k: number, t: number, seed: number, eps = 1e-3): Float64Array {
  const x = gaussian(t * k, seed);
  const h = new Float64Array(k * k);
  for (let r = 0; r < t; r++) {
    for (let i = 0; i < k; i++) {
      const xi = x[r * k + i]! * (1 + (i % 5));
      if (xi === 0) continue;
      for (let j = 0; j < k; j++) h[i * k + j]! += (xi * x[r * k + j]! * (1 + (j % 5))) / t;
    }
  }
  for (let i = 0; i < k; i++) h[i * k + i]! += eps;
  return h;
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe("blocked Cholesky and triangular inverse", () => {
  it.each([
    [64, 16],
    [70, 16], // a last block of 6
    [45, 64], // one block: the flat path
  ])("match the flat loops at k = %d, blocks of %d", async (k, block) => {
    const h = spd(k, 3 * k, k);
    const flat = Float64Array.from(h);
    expect(choleskyLowerInPlace(flat, k)).toBe(true);
    const blocked = Float64Array.from(h);
    expect(await choleskyLowerBlocked(blocked, k, gemm, block)).toBe(true);
    expect(maxAbsDiff(blocked, flat)).toBeLessThan(1e-10);
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) expect(blocked[i * k + j]).toBe(0);
    expect(maxAbsDiff(await invertLowerBlocked(flat, k, gemm, block), invertLower(flat, k))).toBeLessThan(1e-9);
    expect(maxAbsDiff((await upperCholeskyOfInverseBlocked(h, k, gemm, block))!, upperCholeskyOfInverse(h, k)!)).toBeLessThan(1e-9);
  });

  it("refuses a matrix whose failure shows only in a later block", async () => {
    const k = 40;
    const h = spd(k, 3 * k, 7);
    // Row/column 35 becomes a copy of 3 with a smaller diagonal: indefinite, but the first two blocks of 16 still factor.
    for (let j = 0; j < k; j++) {
      h[35 * k + j] = h[3 * k + j]!;
      h[j * k + 35] = h[j * k + 3]!;
    }
    h[35 * k + 35] = h[3 * k + 3]! - 1;
    expect(choleskyLowerInPlace(Float64Array.from(h), k)).toBe(false);
    expect(await choleskyLowerBlocked(Float64Array.from(h), k, gemm, 16)).toBe(false);
    expect(await upperCholeskyOfInverseBlocked(h, k, gemm, 16)).toBeNull();
  });
});

describe("prepareHessianBlocked", () => {
  it("prepares a wide Hessian (dead columns, act-order) as prepareHessian does, and GPTQ gives the same codes", async () => {
    const k = 320; // three blocks of 128, the last partial
    const h = spd(k, 400, 3);
    for (const dead of [17, 250]) {
      for (let j = 0; j < k; j++) {
        h[dead * k + j] = 0;
        h[j * k + dead] = 0;
      }
    }
    const settings = { ...defaultGptqSettings, actOrder: true };
    const flat = prepareHessian(h, k, settings);
    const blocked = await prepareHessianBlocked(h, k, settings, gemm);
    expect(Array.from(blocked.dead)).toEqual([17, 250]);
    expect(Array.from(blocked.perm!)).toEqual(Array.from(flat.perm!));
    expect(blocked.dampPercent).toBe(flat.dampPercent);
    expect(maxAbsDiff(blocked.hinv, flat.hinv)).toBeLessThan(1e-9);
    const n = 16;
    const w = gaussian(n * k, 4);
    const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false } as const;
    const a = await gptqQuantize(w, n, k, flat, spec, { settings, gemm });
    const b = await gptqQuantize(w, n, k, blocked, spec, { settings, gemm });
    expect(Array.from(b.layer.codes)).toEqual(Array.from(a.layer.codes));
  });

  it("doubles the dampening when H + λI does not factor, as prepareHessian does", async () => {
    // Indefinite (eigenvalues 4 and −2 in every 2×2 pair), mean diagonal 1: needs λ > 2, beyond the 50 % cap.
    const k = 200;
    const h = new Float64Array(k * k);
    for (let i = 0; i < k; i += 2) {
      h[i * k + i] = 1;
      h[(i + 1) * k + i + 1] = 1;
      h[i * k + i + 1] = 3;
      h[(i + 1) * k + i] = 3;
    }
    await expect(prepareHessianBlocked(h, k, defaultGptqSettings, gemm, "L")).rejects.toThrow(/Hessian of L is not positive definite even with 50 % dampening/);
    // Off-diagonal 1.02: eigenvalues 2.02 and −0.02, so λ must exceed 0.02 — reached at 4 %.
    for (let i = 0; i < k; i += 2) {
      h[i * k + i + 1] = 1.02;
      h[(i + 1) * k + i] = 1.02;
    }
    const prep = await prepareHessianBlocked(h, k, defaultGptqSettings, gemm);
    expect(prep.dampPercent).toBeCloseTo(0.04, 12);
    expect(prep.dampPercent).toBe(prepareHessian(h, k, defaultGptqSettings).dampPercent);
  });
});
