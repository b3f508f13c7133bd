// Finite-difference gradient check: builds a float64 graph, compares autodiff against central
// differences of the same graph's loss, run through ONNX Runtime.

import { CompiledGraph, Graph, grad, mul, reduceSum, type DType, type HostArray, type Value, numel } from "../../src/engine/index.js";

export interface CheckInput {
  shape: number[];
  dtype?: DType;
  /** Fixed data (e.g. integer indices); random normal when absent. */
  data?: HostArray;
  /** Maps a random normal draw, e.g. to keep log/sqrt inputs positive. */
  map?: (x: number) => number;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function normals(n: number, rand: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  return out;
}

export interface GradCheckOptions {
  rtol?: number;
  atol?: number;
  h?: number;
  samples?: number;
  seed?: number;
}

export interface GradCheckResult {
  worst: number;
  checked: number;
}

/** Max over sampled elements of |analytic − numeric| / (atol + rtol·|numeric|); ≤ 1 passes. */
export async function gradCheck(
  build: (g: Graph, xs: Value[]) => Value,
  inputs: CheckInput[],
  opts: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const { rtol = 1e-5, atol = 1e-8, h = 1e-5, samples = 12, seed = 1 } = opts;
  const rand = lcg(seed);
  const g = new Graph();
  const xs = inputs.map((inp, i) => g.input(`x${i}`, inp.shape, inp.dtype ?? "float64"));
  const y = build(g, xs);
  const weights = g.constant(normals(numel(y.shape), rand), y.shape, "float64");
  const loss = reduceSum(mul(y, weights), y.shape.map((_, i) => i));
  const floats = xs.filter((x) => x.dtype === "float64");
  const grads = grad(loss, floats);
  const outputs: Record<string, Value> = { loss };
  grads.forEach((gv, i) => (outputs[`g${i}`] = gv));
  const compiled = await CompiledGraph.compile(g, outputs, { threads: 1 });

  const feeds: Record<string, { data: HostArray; shape: number[] }> = {};
  inputs.forEach((inp, i) => {
    const n = numel(inp.shape);
    const data = inp.data ?? normals(n, rand).map(inp.map ?? ((x) => x));
    feeds[`x${i}`] = { data, shape: inp.shape };
  });
  const base = await compiled.run(feeds);
  const lossAt = async () => (await compiled.run(feeds, ["loss"])).loss!.data[0] as number;

  let worst = 0;
  let checked = 0;
  for (const [gi, x] of floats.entries()) {
    const data = feeds[x.name!]!.data as Float64Array;
    const analytic = base[`g${gi}`]!.data as Float64Array;
    const n = data.length;
    const picks = n <= samples ? [...Array(n).keys()] : Array.from({ length: samples }, () => Math.floor(rand() * n));
    for (const j of picks) {
      const keep = data[j]!;
      data[j] = keep + h;
      const up = await lossAt();
      data[j] = keep - h;
      const down = await lossAt();
      data[j] = keep;
      const numeric = (up - down) / (2 * h);
      worst = Math.max(worst, Math.abs(analytic[j]! - numeric) / (atol + rtol * Math.abs(numeric)));
      checked++;
    }
  }
  await compiled.release();
  return { worst, checked };
}
