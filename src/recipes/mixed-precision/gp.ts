// Gaussian-process regression and expected improvement: the surrogate and acquisition of the
// Bayesian optimisation over bit allocations. Small and exact (n ≤ a few hundred points): a Matérn
// 5/2 kernel on standardised targets, the length scale and noise chosen by maximising the log
// marginal likelihood over a grid (deterministic, no gradient fitting), a Cholesky solve.
// npm has no maintained GP library; this is the textbook algorithm (Rasmussen & Williams, alg. 2.1).

export interface GpPrediction {
  mean: number;
  std: number;
}

export interface GpOptions {
  /** Length scales tried (default: a geometric grid scaled by √d). */
  lengthScales?: number[];
  /** Noise variances tried, on standardised targets. */
  noises?: number[];
}

/** Matérn 5/2 with unit signal variance at distance r and length scale ℓ. */
export function matern52(r: number, lengthScale: number): number {
  const a = (Math.sqrt(5) * r) / lengthScale;
  return (1 + a + (a * a) / 3) * Math.exp(-a);
}

function distance(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

/** Lower-triangular L with L·Lᵀ = A (row-major n×n), or null when A is not positive definite. */
export function cholesky(A: Float64Array, n: number): Float64Array | null {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]!;
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      if (i === j) {
        if (!(s > 0)) return null;
        L[i * n + i] = Math.sqrt(s);
      } else {
        L[i * n + j] = s / L[j * n + j]!;
      }
    }
  }
  return L;
}

/** Solves L·x = b (forward) for lower-triangular L. */
function forward(L: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i]!;
    for (let k = 0; k < i; k++) s -= L[i * n + k]! * x[k]!;
    x[i] = s / L[i * n + i]!;
  }
  return x;
}

/** Solves Lᵀ·x = b (backward). */
function backward(L: Float64Array, n: number, b: ArrayLike<number>): Float64Array {
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * x[k]!;
    x[i] = s / L[i * n + i]!;
  }
  return x;
}

export class GaussianProcess {
  private constructor(
    private readonly X: number[][],
    private readonly L: Float64Array,
    private readonly alpha: Float64Array,
    readonly lengthScale: number,
    readonly noise: number,
    private readonly yMean: number,
    private readonly yStd: number,
    readonly logMarginalLikelihood: number,
  ) {}

  /** Fits on inputs X (n × d) and targets y (n), picking (ℓ, noise) by marginal likelihood. */
  static fit(X: number[][], y: readonly number[], opts: GpOptions = {}): GaussianProcess {
    const n = X.length;
    if (n === 0 || n !== y.length) throw new Error(`GaussianProcess.fit: ${n} inputs and ${y.length} targets`);
    const d = X[0]!.length;
    const yMean = y.reduce((a, b) => a + b, 0) / n;
    const yVar = y.reduce((a, b) => a + (b - yMean) ** 2, 0) / n;
    const yStd = yVar > 1e-300 ? Math.sqrt(yVar) : 1;
    const z = y.map((v) => (v - yMean) / yStd);
    const lengthScales = opts.lengthScales ?? [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2].map((s) => s * Math.sqrt(d));
    const noises = opts.noises ?? [1e-6, 1e-4, 1e-3, 1e-2, 1e-1];
    const D = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) D[i * n + j] = distance(X[i]!, X[j]!);
    let best: GaussianProcess | null = null;
    for (const ell of lengthScales) {
      for (const noise of noises) {
        const K = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) K[i * n + j] = matern52(D[i * n + j]!, ell) + (i === j ? noise : 0);
        const L = cholesky(K, n);
        if (!L) continue;
        const alpha = backward(L, n, forward(L, n, z));
        let lml = -0.5 * z.reduce((s, v, i) => s + v * alpha[i]!, 0) - 0.5 * n * Math.log(2 * Math.PI);
        for (let i = 0; i < n; i++) lml -= Math.log(L[i * n + i]!);
        if (!best || lml > best.logMarginalLikelihood) best = new GaussianProcess(X.map((x) => [...x]), L, alpha, ell, noise, yMean, yStd, lml);
      }
    }
    if (!best) throw new Error("GaussianProcess.fit: no (length scale, noise) gave a positive-definite kernel");
    return best;
  }

  /** The same hyperparameters refitted on new data (kriging believer: no re-selection). */
  refit(X: number[][], y: readonly number[]): GaussianProcess {
    return GaussianProcess.fit(X, y, { lengthScales: [this.lengthScale], noises: [this.noise] });
  }

  /** Posterior mean and standard deviation of the latent function at x, in target units. */
  predict(x: readonly number[]): GpPrediction {
    const n = this.X.length;
    const k = this.X.map((xi) => matern52(distance(xi, x), this.lengthScale));
    let mean = 0;
    for (let i = 0; i < n; i++) mean += k[i]! * this.alpha[i]!;
    const v = forward(this.L, n, k);
    let variance = 1;
    for (let i = 0; i < n; i++) variance -= v[i]! * v[i]!;
    return { mean: this.yMean + this.yStd * mean, std: this.yStd * Math.sqrt(Math.max(variance, 0)) };
  }
}

/** Complementary error function (Numerical Recipes' erfcc, relative error < 1.2e-7). */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

export const normalCdf = (z: number): number => 0.5 * erfc(-z / Math.SQRT2);
export const normalPdf = (z: number): number => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);

/**
 * Expected improvement below `best` (we minimise a loss): E[max(best − ξ − Y, 0)] for
 * Y ~ N(mean, std²) = (best − ξ − μ)·Φ(u) + σ·φ(u), u = (best − ξ − μ)/σ.
 */
export function expectedImprovement(p: GpPrediction, best: number, xi = 0): number {
  const gap = best - xi - p.mean;
  if (p.std <= 1e-12) return Math.max(gap, 0);
  const u = gap / p.std;
  return gap * normalCdf(u) + p.std * normalPdf(u);
}
