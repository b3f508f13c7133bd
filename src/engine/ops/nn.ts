// Neural-network primitives that ONNX has as single ops: Softmax, LogSoftmax, Gather, GatherElements.

import { hostArray, normAxis } from "../dtype.js";
import type { OpDef, Value } from "../graph.js";
import { exp, mul, sub } from "./elementwise.js";
import { reduceSum } from "./reduce.js";
import { reshape } from "./shape.js";

const Softmax: OpDef = {
  type: "Softmax",
  vjp: (node, dy) => {
    const y = node.output;
    const axis = node.meta.axis as number;
    // dx = y ⊙ (dy − Σ(dy ⊙ y))
    return [mul(y, sub(dy, reduceSum(mul(dy, y), [axis], true)))];
  },
};

const LogSoftmax: OpDef = {
  type: "LogSoftmax",
  vjp: (node, dy) => {
    const axis = node.meta.axis as number;
    // dx = dy − softmax ⊙ Σ dy
    return [sub(dy, mul(exp(node.output), reduceSum(dy, [axis], true)))];
  },
};

export function softmax(x: Value, axis = -1): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.add(Softmax, [x], x.shape, x.dtype, { axis: a }, { axis: a });
}

export function logSoftmax(x: Value, axis = -1): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.add(LogSoftmax, [x], x.shape, x.dtype, { axis: a }, { axis: a });
}

const ScatterNDAdd: OpDef = { type: "ScatterND" };
const ConstantOfShape: OpDef = { type: "ConstantOfShape" };

function zerosLike(x: Value): Value {
  const g = x.graph;
  return g.add(ConstantOfShape, [g.int64s(x.shape)], x.shape, x.dtype, { value: { tensor: { dtype: x.dtype, data: hostArray(x.dtype, [0]) } } });
}

const Gather: OpDef = {
  type: "Gather",
  vjp: (node, dy) => {
    const [table, ids] = node.inputs as [Value, Value];
    // Rows picked twice get both gradients: ScatterND with reduction=add sums duplicates.
    const n = ids.shape.reduce((p, d) => p * d, 1);
    const rows = reshape(ids, [n, 1]);
    const updates = reshape(dy, [n, ...table.shape.slice(1)]);
    const g = dy.graph;
    return [g.add(ScatterNDAdd, [zerosLike(table), rows, updates], table.shape, table.dtype, { reduction: "add" }), null];
  },
};

/** Embedding lookup: table[ids] along axis 0. ids must be int64. */
export function gather(table: Value, ids: Value): Value {
  if (ids.dtype !== "int64" && ids.dtype !== "int32") throw new TypeError(`gather: ids must be integers, got ${ids}`);
  return table.graph.add(Gather, [table, ids], [...ids.shape, ...table.shape.slice(1)], table.dtype, { axis: 0 });
}

const ScatterElementsAdd: OpDef = {
  type: "ScatterElements",
  vjp: (node, dy) => {
    const [, idx] = node.inputs as [Value, Value];
    return [dy, null, gatherElements(dy, idx, node.meta.axis as number)];
  },
};

/** x with `updates` added at `idx` along `axis` (duplicates summed). */
export function scatterElementsAdd(x: Value, idx: Value, updates: Value, axis: number): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.add(ScatterElementsAdd, [x, idx, updates], x.shape, x.dtype, { axis: a, reduction: "add" }, { axis: a });
}

const GatherElements: OpDef = {
  type: "GatherElements",
  vjp: (node, dy) => {
    const [x, idx] = node.inputs as [Value, Value];
    const axis = node.meta.axis as number;
    const g = dy.graph;
    return [g.add(ScatterElementsAdd, [zerosLike(x), idx, dy], x.shape, x.dtype, { axis, reduction: "add" }, { axis }), null];
  },
};

/** out[i][j] = x[i][idx[i][j]] along `axis` (idx has x's rank). */
export function gatherElements(x: Value, idx: Value, axis: number): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.add(GatherElements, [x, idx], idx.shape, x.dtype, { axis: a }, { axis: a });
}
