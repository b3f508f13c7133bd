// The recursive factorization (linalg/blocked-cholesky.ts) against the flat loops of cholesky.ts:
// in float64 the same factors up to rounding for widths that are and are not whole blocks and for
// several levels of halving, in float32 (what GPTQ uses) as close as float32 allows; the same refusal
// of a matrix that is not positive definite (found in a later block); and prepareHessianBlocked
// giving GPTQ the same preparation — and so the same codes — as prepareHessian.

import { afterAll, describe, expect, it } from "vitest";
import { defaultGptqSettings, gptqQuantize, prepareHessian, prepareHessianBlocked } from "../../src/quant/gptq.js";
import { inverseCholeskyFactor, upperCholeskyOfInverseBlocked } from "../../src/quant/linalg/blocked-cholesky.js";
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

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** L⁻¹ of chol(h) by the flat loops. */
function flatInverseFactor(h: Float64Array, k: number): Float64Array {
  const l = Float64Array.from(h);
  expect(choleskyLowerInPlace(l, k)).toBe(true);
  return invertLower(l, k);
}

describe("HostGemm.mulAdd", () => {
  it("computes C − op(A)·op(B) and leaves C alone, in both precisions", async () => {
    const [m, k, n] = [5, 3, 4];
    const a = gaussian(k * m, 1); // stored [k, m]: used transposed
    const b = gaussian(k * n, 2);
    const c = gaussian(m * n, 3);
    const want = new Float64Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += a[q * m + i]! * b[q * n + j]!;
      want[i * n + j] = c[i * n + j]! - s;
    }
    const before = Float32Array.from(c);
    const got32 = await gemm.mulAdd(c, a, b, { m, k, n, transA: true, alpha: -1 });
    expect(maxAbsDiff(got32, want)).toBeLessThan(1e-5);
    expect(Array.from(c)).toEqual(Array.from(before));
    const got64 = await gemm.mulAdd(Float64Array.from(c), Float64Array.from(a), Float64Array.from(b), { m, k, n, transA: true, alpha: -1 });
    expect(maxAbsDiff(got64, want)).toBeLessThan(1e-12);
    await expect(gemm.mulAdd(c.subarray(1), a, b, { m, k, n, transA: true, alpha: -1 })).rejects.toThrow(/C has 19 values/);
  });
});

describe("recursive Cholesky factor inverse", () => {
  it.each([
    [64, 16, 512], // two levels of halving
    [70, 16, 512], // a last block of 6
    [45, 64, 512], // one block: the flat path
    [300, 32, 512], // four levels, uneven halves
    [300, 32, 40], // the same with the triangular products split in halves, down to widths of 40
    [231, 16, 24], // odd widths at every split
  ])("matches the flat loops at k = %d, blocks of %d, triangles split from width %d (float64)", async (k, block, splitMin) => {
    const h = spd(k, 3 * k, k);
    const want = flatInverseFactor(h, k);
    const got = (await inverseCholeskyFactor(Float64Array.from(h), k, gemm, { block, splitMin }))!;
    expect(got).toBeInstanceOf(Float64Array);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-9 * maxAbs(want));
    for (let i = 0; i < k; i++) for (let j = i + 1; j < k; j++) expect(got[i * k + j]).toBe(0);
    const u = (await upperCholeskyOfInverseBlocked(h, k, gemm, { block, splitMin, precision: "float64" }))!;
    expect(u).toBeInstanceOf(Float64Array);
    expect(maxAbsDiff(u, upperCholeskyOfInverse(h, k)!)).toBeLessThan(1e-9 * maxAbs(want));
  });

  it("takes H's diagonal from `diagonal` when given, without writing H", async () => {
    const k = 150;
    const h = spd(k, 2 * k, 5);
    const before = Float64Array.from(h);
    const diagonal = Float64Array.from({ length: k }, (_, i) => h[i * k + i]! + 0.5 + (i % 3));
    const withDiagonal = Float64Array.from(h);
    for (let i = 0; i < k; i++) withDiagonal[i * k + i] = diagonal[i]!;
    const u = (await upperCholeskyOfInverseBlocked(h, k, gemm, { block: 32, precision: "float64", diagonal }))!;
    expect(maxAbsDiff(u, upperCholeskyOfInverse(withDiagonal, k)!)).toBeLessThan(1e-9);
    expect(Array.from(h)).toEqual(Array.from(before));
  });

  it("in float32 agrees with float64 to float32's precision", async () => {
    const k = 300;
    const h = spd(k, 3 * k, 9, 0.05);
    const want = upperCholeskyOfInverse(h, k)!;
    const u = (await upperCholeskyOfInverseBlocked(h, k, gemm, { block: 32, splitMin: 40 }))!;
    expect(u).toBeInstanceOf(Float32Array);
    const rel = maxAbsDiff(u, want) / maxAbs(want);
    expect(rel).toBeLessThan(1e-4);
    expect(rel).toBeGreaterThan(0); // float32 really is in use
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
    expect(await inverseCholeskyFactor(Float64Array.from(h), k, gemm, { block: 16 })).toBeNull();
    expect(await inverseCholeskyFactor(Float64Array.from(h), k, gemm, { block: 8, splitMin: 8 })).toBeNull();
    expect(await upperCholeskyOfInverseBlocked(h, k, gemm, { block: 16 })).toBeNull();
    expect(await upperCholeskyOfInverseBlocked(h, k, gemm, { block: 16, precision: "float64" })).toBeNull();
  });
});

describe("prepareHessianBlocked", () => {
  // float64: the same U up to rounding, and the same codes. float32 (the default, as the reference):
  // U to float32's precision, and GPTQ's result is the same but for codes that sat on a rounding
  // boundary, with the same loss to 4 digits.
  it.each([
    ["float64", 1e-9, 0],
    ["float32", 1e-4, 0.01],
  ] as const)("in %s prepares a wide Hessian (dead columns, act-order) as prepareHessian does, and GPTQ gives the same codes", async (precision, uTolerance, codesDiffering) => {
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
    const blocked = await prepareHessianBlocked(h, k, settings, gemm, "L", precision);
    expect(blocked.hinv).toBeInstanceOf(precision === "float32" ? Float32Array : Float64Array);
    expect(Array.from(blocked.dead)).toEqual([17, 250]);
    expect(Array.from(blocked.perm!)).toEqual(Array.from(flat.perm!));
    expect(blocked.dampPercent).toBe(flat.dampPercent);
    expect(maxAbsDiff(blocked.hinv, flat.hinv)).toBeLessThan(uTolerance * maxAbs(flat.hinv));
    const n = 16;
    const w = gaussian(n * k, 4);
    const spec = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false } as const;
    const a = await gptqQuantize(w, n, k, flat, spec, { settings, gemm });
    const b = await gptqQuantize(w, n, k, blocked, spec, { settings, gemm });
    let differ = 0;
    for (let i = 0; i < n * k; i++) if (a.layer.codes[i] !== b.layer.codes[i]) differ++;
    expect(differ).toBeLessThanOrEqual(codesDiffering * n * k);
    expect(Math.abs(b.loss - a.loss)).toBeLessThan(1e-4 * a.loss);
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
