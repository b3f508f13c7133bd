// GPTQ: the optimised algorithm (Cholesky of H⁻¹, lazy batches through ORT, groups fixed at their
// start, act-order) against a direct, unoptimised column-by-column implementation of the same update
// (explicit inverse, OBS-style removal of each quantized column) — equal codes; and its layer-wise
// error ‖WX − ŴX‖² against RTN's on inputs with correlated features.

import { afterAll, describe, expect, it } from "vitest";
import { dequantize, quantizeLinear } from "../../src/quant/kinds/index.js";
import { rtnCode, rtnGroupParams } from "../../src/quant/kinds/rtn.js";
import { roundToF16 } from "../../src/core/f16.js";
import { type GptqSettings, defaultGptqSettings, gptqQuantize, prepareHessian } from "../../src/quant/gptq.js";
import { upperCholeskyOfInverse } from "../../src/quant/linalg/cholesky.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import type { QuantBits, QuantSpec } from "../../src/quant/types.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { gaussian } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());

/** Calibration inputs X [T, K] with strongly correlated features: X = Z·(I + A), A dense. */
function correlatedInputs(t: number, k: number, seed: number, deadColumns: number[] = []): Float64Array {
  const z = gaussian(t * k, seed);
  const a = gaussian(k * k, seed + 1);
  const x = new Float64Array(t * k);
  for (let r = 0; r < t; r++) {
    for (let j = 0; j < k; j++) {
      let v = z[r * k + j]!;
      for (let i = 0; i < k; i++) v += (z[r * k + i]! * a[i * k + j]!) / Math.sqrt(k) * 1.5;
      x[r * k + j] = v * (1 + (j % 7) / 3);
    }
    for (const d of deadColumns) x[r * k + d] = 0;
  }
  return x;
}

function hessian(x: Float64Array, t: number, k: number): Float64Array {
  const h = new Float64Array(k * k);
  for (let r = 0; r < t; r++) {
    for (let i = 0; i < k; i++) {
      const xi = x[r * k + i]!;
      if (xi === 0) continue;
      for (let j = 0; j < k; j++) h[i * k + j]! += (2 * xi * x[r * k + j]!) / t;
    }
  }
  return h;
}

/** Gauss–Jordan inverse, float64. */
function inverse(m: Float64Array, k: number): Float64Array {
  const a = Float64Array.from(m);
  const inv = new Float64Array(k * k);
  for (let i = 0; i < k; i++) inv[i * k + i] = 1;
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(a[r * k + c]!) > Math.abs(a[p * k + c]!)) p = r;
    for (let j = 0; j < k; j++) {
      [a[c * k + j], a[p * k + j]] = [a[p * k + j]!, a[c * k + j]!];
      [inv[c * k + j], inv[p * k + j]] = [inv[p * k + j]!, inv[c * k + j]!];
    }
    const d = a[c * k + c]!;
    for (let j = 0; j < k; j++) {
      a[c * k + j]! /= d;
      inv[c * k + j]! /= d;
    }
    for (let r = 0; r < k; r++) {
      if (r === c) continue;
      const f = a[r * k + c]!;
      if (f === 0) continue;
      for (let j = 0; j < k; j++) {
        a[r * k + j]! -= f * a[c * k + j]!;
        inv[r * k + j]! -= f * inv[c * k + j]!;
      }
    }
  }
  return inv;
}

/**
 * The direct form of GPTQ's update: one column at a time in processing order, params of a group from
 * the current weights when the group starts, e = (w − q)/[H⁻¹]_ii moves W[:, j] by −e·[H⁻¹]_ij, then
 * column i is removed from H⁻¹ (H⁻¹ ← H⁻¹ − H⁻¹[:, i] H⁻¹[i, :] / [H⁻¹]_ii). Returns codes in
 * original column order.
 */
function directGptq(w: Float32Array, n: number, k: number, h: Float64Array, spec: QuantSpec, actOrder: boolean, damp = 0.01): Uint8Array {
  const hh = Float64Array.from(h);
  const dead: number[] = [];
  for (let i = 0; i < k; i++) if (hh[i * k + i] === 0) (dead.push(i), (hh[i * k + i] = 1));
  const order = Array.from({ length: k }, (_, i) => i);
  if (actOrder) order.sort((a, b) => hh[b * k + b]! - hh[a * k + a]! || a - b);
  const W = new Float64Array(n * k);
  for (let r = 0; r < n; r++) for (let j = 0; j < k; j++) W[r * k + j] = dead.includes(order[j]!) ? 0 : w[r * k + order[j]!]!;
  const hp = new Float64Array(k * k);
  let mean = 0;
  for (let i = 0; i < k; i++) mean += hh[i * k + i]! / k;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) hp[i * k + j] = hh[order[i]! * k + order[j]!]! + (i === j ? damp * mean : 0);
  const hinv = inverse(hp, k);
  const gs = spec.groupSize === "channel" ? k : spec.groupSize;
  const maxq = (1 << spec.bits) - 1;
  const codes = new Uint8Array(n * k);
  const sz: Array<{ s: number; z: number }> = [];
  const params = (from: number, count: number) => {
    for (let r = 0; r < n; r++) {
      let lo = 0;
      let hi = 0;
      for (let j = from; j < from + count; j++) (lo = Math.min(lo, W[r * k + j]!)), (hi = Math.max(hi, W[r * k + j]!));
      const p = rtnGroupParams(lo, hi, spec.bits, spec.symmetric, true);
      sz[r] = { s: roundToF16(p.s), z: p.z };
    }
  };
  if (gs === k) params(0, k);
  for (let i = 0; i < k; i++) {
    if (gs < k && i % gs === 0) params(i, gs);
    const d = hinv[i * k + i]!;
    for (let r = 0; r < n; r++) {
      const { s, z } = sz[r]!;
      const code = rtnCode(W[r * k + i]!, s, z, maxq);
      codes[r * k + order[i]!] = code;
      const e = (W[r * k + i]! - s * (code - z)) / d;
      for (let j = i + 1; j < k; j++) W[r * k + j]! -= e * hinv[i * k + j]!;
    }
    const col = Array.from({ length: k }, (_, r) => hinv[r * k + i]!);
    const row = Array.from({ length: k }, (_, j) => hinv[i * k + j]!);
    for (let r = 0; r < k; r++) for (let j = 0; j < k; j++) hinv[r * k + j]! -= (col[r]! * row[j]!) / d;
  }
  return codes;
}

/** ‖(W − Ŵ)·Xᵀ‖² over the calibration inputs. */
function layerError(w: Float32Array, wq: Float32Array, n: number, k: number, x: Float64Array, t: number): number {
  let sum = 0;
  for (let r = 0; r < n; r++) {
    for (let s = 0; s < t; s++) {
      let y = 0;
      for (let j = 0; j < k; j++) y += (w[r * k + j]! - wq[r * k + j]!) * x[s * k + j]!;
      sum += y * y;
    }
  }
  return sum;
}

describe("upperCholeskyOfInverse", () => {
  it("gives U with UᵀU·H = I for a random SPD matrix", () => {
    const k = 40;
    const h = hessian(correlatedInputs(120, k, 3), 120, k);
    const u = upperCholeskyOfInverse(h, k)!;
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(u[i * k + j]).toBe(0);
    let worst = 0;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        // (UᵀU·H)[i, j] = Σ_a Σ_b U[a, i] U[a, b] H[b, j]
        let v = 0;
        for (let a = 0; a < k; a++) {
          let ub = 0;
          for (let b = 0; b < k; b++) ub += u[a * k + b]! * h[b * k + j]!;
          v += u[a * k + i]! * ub;
        }
        worst = Math.max(worst, Math.abs(v - (i === j ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-9);
  });

  it("returns null for a matrix that is not positive definite", () => {
    expect(upperCholeskyOfInverse(Float64Array.from([1, 2, 2, 1]), 2)).toBeNull();
  });
});

describe("GPTQ equals the direct column-by-column update", () => {
  const n = 24;
  const k = 96;
  const t = 400;
  const x = correlatedInputs(t, k, 11, [5, 50]);
  const h = hessian(x, t, k);
  const w = gaussian(n * k, 12);
  const cases: Array<[string, QuantBits, QuantSpec["groupSize"], boolean, boolean]> = [
    ["4-bit per channel", 4, "channel", false, false],
    ["3-bit groups of 16", 3, 16, false, false],
    ["2-bit groups of 32, symmetric", 2, 32, true, false],
    ["4-bit per channel, act-order", 4, "channel", false, true],
    ["3-bit groups of 16, act-order", 3, 16, false, true],
  ];
  it.each(cases)("%s (lazy blocks of 32, two dead columns)", async (_label, bits, groupSize, symmetric, actOrder) => {
    const spec: QuantSpec = { scheme: "rtn", bits, groupSize, symmetric };
    const settings: GptqSettings = { ...defaultGptqSettings, blockSize: 32, actOrder };
    const prep = prepareHessian(h, k, settings);
    expect(Array.from(prep.dead)).toEqual([5, 50]);
    const { layer } = await gptqQuantize(w, n, k, prep, spec, { settings, gemm });
    const want = directGptq(w, n, k, h, spec, actOrder);
    let differ = 0;
    for (let i = 0; i < want.length; i++) if (layer.codes[i] !== want[i]) differ++;
    expect(differ).toBe(0);
    if (actOrder && groupSize !== "channel") {
      const gIdx = layer.groupIndex!;
      expect(gIdx).toBeDefined();
      const counts = new Array(k / groupSize).fill(0);
      for (const g of gIdx) counts[g]++;
      expect(counts.every((c) => c === groupSize)).toBe(true);
      // Not the identity grouping: act-order interleaves columns.
      expect(Array.from(gIdx).some((g, i) => g !== Math.floor(i / groupSize))).toBe(true);
    } else {
      expect(layer.groupIndex).toBeUndefined();
    }
  });
});

describe("GPTQ's layer-wise error is below RTN's on correlated inputs", () => {
  const n = 64;
  const k = 128;
  const t = 512;
  const x = correlatedInputs(t, k, 21);
  const h = hessian(x, t, k);
  const w = gaussian(n * k, 22);
  const cases: Array<[QuantBits, QuantSpec["groupSize"], boolean]> = [
    [4, "channel", false],
    [3, 32, false],
    [2, 64, false],
    [3, "channel", true],
    [3, 32, true],
  ];
  it.each(cases)("%d bits, group %s, act-order %s", async (bits, groupSize, actOrder) => {
    const spec: QuantSpec = { scheme: "rtn", bits, groupSize, symmetric: false };
    const settings = { ...defaultGptqSettings, actOrder };
    const { layer } = await gptqQuantize(w, n, k, prepareHessian(h, k, settings), spec, { settings, gemm });
    const gptqErr = layerError(w, dequantize(layer), n, k, x, t);
    const rtnErr = layerError(w, dequantize(quantizeLinear(w, n, k, spec)), n, k, x, t);
    expect(gptqErr).toBeLessThan(0.8 * rtnErr);
  });
});

describe("GPTQ input checks", () => {
  it("refuses a Hessian of the wrong width and non-finite values", async () => {
    const h = new Float64Array(16);
    h[0] = Number.NaN;
    expectSlimtuneError(() => prepareHessian(h, 4, defaultGptqSettings, "L"), "E_ARG", "Hessian of L holds NaN");
    const prep = prepareHessian(Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)), 4, defaultGptqSettings);
    await expect(gptqQuantize(new Float32Array(8 * 8), 8, 8, prep, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false }, { settings: defaultGptqSettings, gemm })).rejects.toThrow(/8-wide Hessian/);
  });

  it("refuses dampening outside (0, 1)", () => {
    expectSlimtuneError(() => prepareHessian(new Float64Array(4).fill(1), 2, { ...defaultGptqSettings, dampPercent: 0 }), "E_ARG", "--damp 0");
  });
});
