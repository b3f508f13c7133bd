// Reductions over static axes (ReduceSum, ReduceMean) with keepdims, and the running sum CumSum.

import { type DType, normAxis } from "../dtype.js";
import type { OpDef, Value } from "../graph.js";
import { mul } from "./elementwise.js";
import { expand, reshape } from "./shape.js";

function keptShape(x: Value, axes: readonly number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reducedShape(x: Value, axes: readonly number[], keepDims: boolean): number[] {
  return keepDims ? keptShape(x, axes) : x.shape.filter((_, i) => !axes.includes(i));
}

/** Broadcasts a reduced gradient back over the reduced axes. */
function spread(node: { inputs: readonly Value[]; meta: Record<string, unknown> }, dy: Value): Value {
  const x = node.inputs[0]!;
  const axes = node.meta.axes as number[];
  return expand(reshape(dy, keptShape(x, axes)), x.shape);
}

const ReduceSum: OpDef = { type: "ReduceSum", vjp: (node, dy) => [spread(node, dy), null] };

const ReduceMean: OpDef = {
  type: "ReduceMean",
  vjp: (node, dy) => {
    const x = node.inputs[0]!;
    const count = (node.meta.axes as number[]).reduce((n, a) => n * x.shape[a]!, 1);
    return [spread(node, mul(dy, x.graph.scalar(1 / count, x.dtype))), null];
  },
};

function reduce(op: OpDef, x: Value, axes: readonly number[], keepDims: boolean, dtype: DType = x.dtype): Value {
  const norm = [...new Set(axes.map((a) => normAxis(a, x.rank)))].sort((a, b) => a - b);
  const g = x.graph;
  return g.add(op, [x, g.int64s(norm)], reducedShape(x, norm, keepDims), dtype, { keepdims: keepDims ? 1 : 0 }, { axes: norm });
}

export const reduceSum = (x: Value, axes: readonly number[], keepDims = false) => reduce(ReduceSum, x, axes, keepDims);
export const reduceMean = (x: Value, axes: readonly number[], keepDims = false) => reduce(ReduceMean, x, axes, keepDims);

const CumSum: OpDef = { type: "CumSum" };

/** Running sum along `axis` (inclusive), e.g. positions from an attention mask. */
export function cumSum(x: Value, axis: number): Value {
  const a = normAxis(axis, x.rank);
  const g = x.graph;
  return g.add(CumSum, [x, g.constant(BigInt64Array.of(BigInt(a)), [], "int64")], x.shape, x.dtype);
}
