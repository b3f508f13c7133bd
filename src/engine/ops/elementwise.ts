// Elementwise ops with numpy broadcasting. Each op's forward sits beside its VJP.

import { type DType, broadcastShapes, isFloat, onnxTypeCode } from "../dtype.js";
import type { OpDef, Value } from "../graph.js";
import { unbroadcast } from "./shape.js";

function binary(op: OpDef, a: Value, b: Value, dtype: DType = a.dtype): Value {
  if (a.dtype !== b.dtype) throw new TypeError(`${op.type}: dtype ${a.dtype} vs ${b.dtype} (${a}, ${b})`);
  return a.graph.add(op, [a, b], broadcastShapes(a.shape, b.shape), dtype);
}

function unary(op: OpDef, x: Value): Value {
  return x.graph.add(op, [x], x.shape, x.dtype);
}

const Add: OpDef = {
  type: "Add",
  vjp: (node, dy) => node.inputs.map((x) => unbroadcast(dy, x.shape)),
};
const Sub: OpDef = {
  type: "Sub",
  vjp: (node, dy) => [unbroadcast(dy, node.inputs[0]!.shape), unbroadcast(neg(dy), node.inputs[1]!.shape)],
};
const Mul: OpDef = {
  type: "Mul",
  vjp: (node, dy) => {
    const [a, b] = node.inputs as [Value, Value];
    return [unbroadcast(mul(dy, b), a.shape), unbroadcast(mul(dy, a), b.shape)];
  },
};
const Div: OpDef = {
  type: "Div",
  vjp: (node, dy) => {
    const [a, b] = node.inputs as [Value, Value];
    const da = div(dy, b);
    // d(a/b)/db = −a/b² = −(dy/b)·(a/b)
    const db = neg(mul(da, node.output));
    return [unbroadcast(da, a.shape), unbroadcast(db, b.shape)];
  },
};

export const add = (a: Value, b: Value) => binary(Add, a, b);
export const sub = (a: Value, b: Value) => binary(Sub, a, b);
export const mul = (a: Value, b: Value) => binary(Mul, a, b);
export const div = (a: Value, b: Value) => binary(Div, a, b);

const Neg: OpDef = { type: "Neg", vjp: (_node, dy) => [neg(dy)] };
const Exp: OpDef = { type: "Exp", vjp: (node, dy) => [mul(dy, node.output)] };
const Log: OpDef = { type: "Log", vjp: (node, dy) => [div(dy, node.inputs[0]!)] };
const Sqrt: OpDef = {
  type: "Sqrt",
  vjp: (node, dy) => [div(mul(dy, dy.graph.scalar(0.5, dy.dtype)), node.output)],
};
const Reciprocal: OpDef = {
  type: "Reciprocal",
  vjp: (node, dy) => [neg(mul(dy, mul(node.output, node.output)))],
};
const Sigmoid: OpDef = {
  type: "Sigmoid",
  vjp: (node, dy) => {
    const y = node.output;
    return [mul(dy, mul(y, sub(y.graph.scalar(1, y.dtype), y)))];
  },
};
const Tanh: OpDef = {
  type: "Tanh",
  vjp: (node, dy) => {
    const y = node.output;
    return [mul(dy, sub(y.graph.scalar(1, y.dtype), mul(y, y)))];
  },
};
const Erf: OpDef = {
  type: "Erf",
  vjp: (node, dy) => {
    const x = node.inputs[0]!;
    const g = x.graph;
    // d erf(x)/dx = 2/sqrt(pi) · exp(-x²)
    return [mul(dy, mul(g.scalar(2 / Math.sqrt(Math.PI), x.dtype), exp(neg(mul(x, x)))))];
  },
};

const Cos: OpDef = { type: "Cos", vjp: (node, dy) => [neg(mul(dy, sin(node.inputs[0]!)))] };
const Sin: OpDef = { type: "Sin", vjp: (node, dy) => [mul(dy, cos(node.inputs[0]!))] };

export const neg = (x: Value) => unary(Neg, x);
export const cos = (x: Value) => unary(Cos, x);
export const sin = (x: Value) => unary(Sin, x);
export const exp = (x: Value) => unary(Exp, x);
export const log = (x: Value) => unary(Log, x);
export const sqrt = (x: Value) => unary(Sqrt, x);
export const reciprocal = (x: Value) => unary(Reciprocal, x);
export const sigmoid = (x: Value) => unary(Sigmoid, x);
export const tanh = (x: Value) => unary(Tanh, x);
export const erf = (x: Value) => unary(Erf, x);

const Cast: OpDef = {
  type: "Cast",
  vjp: (node, dy) => {
    const x = node.inputs[0]!;
    return [isFloat(x.dtype) ? cast(dy, x.dtype) : null];
  },
};



export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return x.graph.add(Cast, [x], x.shape, to, { to: onnxTypeCode[to] });
}

const Where: OpDef = {
  type: "Where",
  vjp: (node, dy) => {
    const [cond, a, b] = node.inputs as [Value, Value, Value];
    const zero = dy.graph.scalar(0, dy.dtype);
    return [null, unbroadcast(where(cond, dy, zero), a.shape), unbroadcast(where(cond, zero, dy), b.shape)];
  },
};

export function where(cond: Value, a: Value, b: Value): Value {
  const shape = broadcastShapes(cond.shape, broadcastShapes(a.shape, b.shape));
  return a.graph.add(Where, [cond, a, b], shape, a.dtype);
}

const Equal: OpDef = { type: "Equal" };
const Less: OpDef = { type: "Less" };
const LessOrEqual: OpDef = { type: "LessOrEqual" };
export const equal = (a: Value, b: Value) => binary(Equal, a, b, "bool");
export const less = (a: Value, b: Value) => binary(Less, a, b, "bool");
export const lessOrEqual = (a: Value, b: Value) => binary(LessOrEqual, a, b, "bool");

const Greater: OpDef = { type: "Greater" };
const And: OpDef = { type: "And" };
const Sign: OpDef = { type: "Sign" };
export const greater = (a: Value, b: Value) => binary(Greater, a, b, "bool");
export const and = (a: Value, b: Value) => binary(And, a, b, "bool");
export const sign = (x: Value) => unary(Sign, x);

const Abs: OpDef = { type: "Abs", vjp: (node, dy) => [mul(dy, sign(node.inputs[0]!))] };
export const abs = (x: Value) => unary(Abs, x);

const Clip: OpDef = {
  type: "Clip",
  vjp: (node, dy) => {
    const [x, lo, hi] = node.inputs as [Value, Value, Value];
    // The gradient passes where x lies strictly inside [lo, hi] (PyTorch's clamp does the same).
    const inside = cast(and(greater(x, lo), less(x, hi)), x.dtype);
    return [mul(dy, inside), null, null];
  },
};

/** clamp(x, lo, hi) with constant bounds. */
export function clip(x: Value, lo: number, hi: number): Value {
  const g = x.graph;
  return g.add(Clip, [x, g.scalar(lo, x.dtype), g.scalar(hi, x.dtype)], x.shape, x.dtype);
}
