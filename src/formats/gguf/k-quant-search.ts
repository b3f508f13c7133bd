// The scale searches of ggml's reference quantizers (ggml-quants.c: make_qkx2_quants, make_qx_quants,
// make_q3_quants), restated so that every float operation rounds to float32 exactly where C's does:
// the file llama-quantize writes without an importance matrix is then the file slimtune writes, byte
// for byte (test/export/gguf-ggml-reference.test.ts calls ggml's own functions to check it).
//   qkx2: an asymmetric grid x ≈ scale·L − min, L in 0..nmax: starting from the range [min(x, 0), max],
//         try nstep+1 stretched inverse scales, fit scale and min by weighted least squares to each
//         rounding, keep the one of least weighted error (squared or absolute).
//   qx:   a symmetric grid x ≈ scale·(L − nmax), L in 0..2·nmax−1: the element of largest magnitude
//         maps to −nmax; 18 nearby inverse scales are tried, keeping the best least-squares fit
//         weighted by x² (or given weights).
//   q3:   the same symmetric grid, then up to five passes moving single codes to the value the
//         current least-squares scale prefers, kept when the weighted fit improves.

export const f = Math.fround;
/** ggml's GROUP_MAX_EPS: a group whose largest magnitude is below it is all zero. */
const GROUP_MAX_EPS = f(1e-15);
const TENTH = f(0.1);

/** ggml's nearest_int: the float rounded to the nearest integer, ties to even (the FPU's rounding). */
export function nearestInt(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

export interface AsymmetricFit {
  scale: number;
  /** −min ≥ 0: the grid is scale·L − minus. */
  minus: number;
}

/** make_qkx2_quants over x (n values) with weights; fills L (codes 0..nmax). */
export function fitAsymmetric(x: Float32Array, weights: Float32Array, L: Uint8Array, nmax: number, rmin: number, rdelta: number, nstep: number, useMad: boolean): AsymmetricFit {
  const n = x.length;
  let min = x[0]!;
  let max = x[0]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    sumW = f(sumW + weights[i]!);
    sumX = f(sumX + f(weights[i]! * x[i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0);
    return { scale: 0, minus: -min };
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  const error = (s: number, m: number, codes: Uint8Array) => {
    let e = 0;
    for (let i = 0; i < n; i++) {
      let diff = f(f(f(s * codes[i]!) + m) - x[i]!);
      diff = useMad ? Math.abs(diff) : f(diff * diff);
      e = f(e + f(weights[i]! * diff));
    }
    return e;
  };
  for (let i = 0; i < n; i++) L[i] = clamp(nearestInt(f(iscale * f(x[i]! - min))), 0, nmax);
  let bestError = error(scale, min, L);
  if (nstep < 1) return { scale, minus: -min };
  const aux = new Uint8Array(n);
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far: each try stretches the range from it, as ggml does.
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(f(iscale * f(x[i]! - min))), 0, nmax);
      aux[i] = l;
      const wl = f(weights[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
    let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = f(sumXL / sumL2);
    }
    const e = error(thisScale, thisMin, aux);
    if (e < bestError) {
      L.set(aux);
      bestError = e;
      scale = thisScale;
      min = thisMin;
    }
  }
  return { scale, minus: -min };
}

/** The value of largest magnitude, sign kept (0 when every |x| is below GROUP_MAX_EPS). */
function signedAbsMax(x: Float32Array): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < x.length; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  return amax < GROUP_MAX_EPS ? 0 : max;
}

/** make_qx_quants with rmse_type 1 (weights x², or `qw`); fills L (codes 0..2·nmax−1), returns the scale. */
export function fitSymmetric(x: Float32Array, L: Uint8Array, nmax: number, qw?: Float32Array): number {
  const n = x.length;
  const max = signedAbsMax(x);
  if (max === 0) {
    L.fill(0);
    return 0;
  }
  const weight = (i: number) => (qw ? qw[i]! : f(x[i]! * x[i]!));
  const sums = (iscale: number, codes: Uint8Array | null) => {
    let sumlx = 0;
    let suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = clamp(nearestInt(f(iscale * x[i]!)), -nmax, nmax - 1);
      if (codes) codes[i] = l + nmax;
      const w = weight(i);
      sumlx = f(sumlx + f(f(w * x[i]!) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    return [sumlx, suml2] as const;
  };
  const [sumlx0, suml20] = sums(f(-nmax / max), L);
  let scale = suml20 ? f(sumlx0 / suml20) : 0;
  let best = f(scale * sumlx0);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    const iscale = f(f(-f(nmax + f(TENTH * is))) / max);
    const [sumlx, suml2] = sums(iscale, null);
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      sums(iscale, L);
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** make_q3_quants with do_rmse: fills L (codes 0..2·nmax−1), returns the scale. */
export function fitSymmetricRefined(x: Float32Array, L: Uint8Array, nmax: number): number {
  const n = x.length;
  const max = signedAbsMax(x);
  if (max === 0) {
    L.fill(0);
    return 0;
  }
  const iscale = f(-nmax / max);
  const l = new Int32Array(n);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    l[i] = clamp(nearestInt(f(iscale * x[i]!)), -nmax, nmax - 1);
    const w = f(x[i]! * x[i]!);
    sumlx = f(sumlx + f(f(w * x[i]!) * l[i]!));
    suml2 = f(suml2 + f(f(w * l[i]!) * l[i]!));
  }
  for (let pass = 0; pass < 5; pass++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = f(x[i]! * x[i]!);
      let slx = f(sumlx - f(f(w * x[i]!) * l[i]!));
      if (!(slx > 0)) continue;
      let sl2 = f(suml2 - f(f(w * l[i]!) * l[i]!));
      const next = clamp(nearestInt(f(f(x[i]! * sl2) / slx)), -nmax, nmax - 1);
      if (next === l[i]) continue;
      slx = f(slx + f(f(w * x[i]!) * next));
      sl2 = f(sl2 + f(f(w * next) * next));
      if (sl2 > 0 && f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
        l[i] = next;
        sumlx = slx;
        suml2 = sl2;
        changed++;
      }
    }
    if (!changed) break;
  }
  for (let i = 0; i < n; i++) L[i] = l[i]! + nmax;
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}
