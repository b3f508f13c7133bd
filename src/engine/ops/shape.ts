// Shape ops: reshape, transpose, slice, pad, concat, expand, and the broadcast-undo every VJP needs.
// Reshape, expand and concat also take symbolic dims (dims.ts); their run-time sizes come from the
// Shape of the inputs that carry each symbol.

import { type Shape, fmtShape, normAxis, numel, sameShape } from "../dtype.js";
import { isStaticShape } from "../dims.js";
import type { Graph, OpDef, Value } from "../graph.js";
import { reduceSum } from "./reduce.js";

const Reshape: OpDef = {
  type: "Reshape",
  vjp: (node, dy) => [reshape(dy, node.inputs[0]!.shape), null],
};

export function reshape(x: Value, shape: Shape): Value {
  const g = x.graph;
  if (isStaticShape(shape) && isStaticShape(x.shape)) {
    if (numel(shape) !== numel(x.shape)) {
      throw new RangeError(`reshape ${x} to ${fmtShape(shape)}: element counts differ`);
    }
    if (sameShape(shape, x.shape)) return x;
    return g.add(Reshape, [x, g.int64s(shape)], shape, x.dtype);
  }
  if (g.dims.numel(shape) !== g.dims.numel(x.shape)) {
    throw new RangeError(`reshape ${x} to [${shape.map((d) => (d < 0 ? g.dims.name(d) : d)).join(", ")}]: element counts differ`);
  }
  if (sameShape(shape, x.shape)) return x;
  // One symbolic dim is left for ONNX to infer (-1); more need their sizes computed at run time.
  const symbolic = shape.filter((d) => d < 0).length;
  const target = symbolic === 1 ? g.int64s(shape.map((d) => (d < 0 ? -1 : d))) : shapeTensor(g, shape);
  return g.add(Reshape, [x, target], shape, x.dtype);
}

const ShapeOf: OpDef = { type: "Shape" };

/** The run-time value of a dim as an int64 [1] tensor (a constant for static dims). */
export function dimValue(g: Graph, d: number): Value {
  if (d >= 0) return g.int64s([d]);
  let v = g.dimValues.get(d);
  if (v) return v;
  const base = g.dims.baseName(d);
  if (base !== null) {
    const source = g.symbolSources.get(base);
    if (!source) throw new RangeError(`symbol "${base}" is the size of no graph input, so it cannot be computed at run time`);
    v = g.add(ShapeOf, [source.input], [1], "int64", { start: source.axis, end: source.axis + 1 });
  } else {
    let total: Value | null = null;
    for (const [mono, coef] of g.dims.poly(d)) {
      let term: Value | null = coef === 1 && mono !== "" ? null : g.int64s([coef]);
      for (const s of mono ? mono.split("*") : []) {
        const factor = dimValue(g, g.sym(s));
        term = term ? g.add(Mul, [term, factor], [1], "int64") : factor;
      }
      total = total ? g.add(Add, [total, term!], [1], "int64") : term;
    }
    v = total!;
  }
  g.dimValues.set(d, v);
  return v;
}

const Mul: OpDef = { type: "Mul" };
const Add: OpDef = { type: "Add" };

/** A shape as an int64 tensor: a constant when static, else computed from the symbols' sources. */
export function shapeTensor(g: Graph, shape: Shape): Value {
  if (isStaticShape(shape)) return g.int64s(shape);
  const parts: Value[] = [];
  let run: number[] = [];
  for (const d of shape) {
    if (d >= 0) {
      run.push(d);
      continue;
    }
    if (run.length > 0) parts.push(g.int64s(run));
    run = [];
    parts.push(dimValue(g, d));
  }
  if (run.length > 0) parts.push(g.int64s(run));
  return parts.length === 1 ? parts[0]! : g.add(Concat, parts, [shape.length], "int64", { axis: 0 }, { axis: 0 });
}

const Gather: OpDef = { type: "Gather" };

/** x[..., index, ...] on one axis (the axis is dropped); a negative index counts from the end. */
export function take(x: Value, axis: number, index: number): Value {
  const a = normAxis(axis, x.rank);
  const dim = x.shape[a]!;
  if (dim >= 0 && !(index >= -dim && index < dim)) throw new RangeError(`take ${x}: index ${index} out of range on axis ${a}`);
  const g = x.graph;
  const idx = g.constant(BigInt64Array.of(BigInt(index)), [], "int64");
  return g.add(Gather, [x, idx], x.shape.filter((_, i) => i !== a), x.dtype, { axis: a });
}

const Transpose: OpDef = {
  type: "Transpose",
  vjp: (node, dy) => {
    const perm = node.meta.perm as number[];
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return [transpose(dy, inverse)];
  },
};

export function transpose(x: Value, perm: readonly number[]): Value {
  if (perm.length !== x.rank) throw new RangeError(`transpose ${x}: perm ${fmtShape(perm)} has the wrong rank`);
  if (perm.every((p, i) => p === i)) return x;
  const shape = perm.map((p) => x.shape[p]!);
  return x.graph.add(Transpose, [x], shape, x.dtype, { perm: [...perm] }, { perm: [...perm] });
}

/** Swaps the last two axes. */
export function transposeLast2(x: Value): Value {
  const perm = x.shape.map((_, i) => i);
  const r = x.rank;
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return transpose(x, perm);
}

const Slice: OpDef = {
  type: "Slice",
  vjp: (node, dy) => {
    const x = node.inputs[0]!;
    const { axis, start, end } = node.meta as { axis: number; start: number; end: number };
    const before = new Array<number>(x.rank).fill(0);
    const after = new Array<number>(x.rank).fill(0);
    before[axis] = start;
    after[axis] = x.shape[axis]! - end;
    return [pad(dy, before, after), null, null, null];
  },
};

/** x[..., start:end, ...] along one axis (step 1). */
export function slice(x: Value, axis: number, start: number, end: number): Value {
  const a = normAxis(axis, x.rank);
  const dim = x.shape[a]!;
  if (!(0 <= start && start <= end && end <= dim)) {
    throw new RangeError(`slice ${x}: [${start}, ${end}) out of range on axis ${a}`);
  }
  if (start === 0 && end === dim) return x;
  const shape = [...x.shape];
  shape[a] = end - start;
  const g = x.graph;
  return g.add(Slice, [x, g.int64s([start]), g.int64s([end]), g.int64s([a])], shape, x.dtype, {}, { axis: a, start, end });
}

const Pad: OpDef = {
  type: "Pad",
  vjp: (node, dy) => {
    const { before } = node.meta as { before: number[] };
    let g = dy;
    before.forEach((b, axis) => {
      const dim = node.inputs[0]!.shape[axis]!;
      g = slice(g, axis, b, b + dim);
    });
    return [g, null];
  },
};

/** Zero padding; `before`/`after` give the count per axis. */
export function pad(x: Value, before: readonly number[], after: readonly number[]): Value {
  if (before.every((b) => b === 0) && after.every((a) => a === 0)) return x;
  const shape = x.shape.map((d, i) => d + before[i]! + after[i]!);
  return x.graph.add(Pad, [x, x.graph.int64s([...before, ...after])], shape, x.dtype, { mode: "constant" }, { before: [...before] });
}

const Concat: OpDef = {
  type: "Concat",
  vjp: (node, dy) => {
    const axis = node.meta.axis as number;
    let offset = 0;
    return node.inputs.map((x) => {
      const d = x.shape[axis]!;
      const g = slice(dy, axis, offset, offset + d);
      offset += d;
      return g;
    });
  },
};

export function concat(xs: Value[], axis: number): Value {
  const first = xs[0];
  if (!first) throw new RangeError("concat of nothing");
  if (xs.length === 1) return first;
  const a = normAxis(axis, first.rank);
  const shape = [...first.shape];
  const g = first.graph;
  const symbolic = xs.some((x) => !isStaticShape(x.shape));
  for (const x of xs) {
    if (x.rank !== first.rank || (symbolic && x.shape.some((d, i) => i !== a && d !== first.shape[i]))) {
      throw new RangeError(`concat on axis ${a}: ${x} does not match ${first}`);
    }
  }
  shape[a] = symbolic ? xs.reduce((s, x) => g.dims.add(s, x.shape[a]!), 0) : xs.reduce((s, x) => s + x.shape[a]!, 0);
  return g.add(Concat, xs, shape, first.dtype, { axis: a }, { axis: a });
}

const Expand: OpDef = {
  type: "Expand",
  vjp: (node, dy) => [unbroadcast(dy, node.inputs[0]!.shape), null],
};

export function expand(x: Value, shape: Shape): Value {
  if (sameShape(x.shape, shape)) return x;
  const g = x.graph;
  if (isStaticShape(shape)) return g.add(Expand, [x, g.int64s(shape)], shape, x.dtype);
  // A symbolic dim x already has broadcasts from a 1 (Expand keeps x's size there).
  const lead = shape.length - x.rank;
  const target = shape.map((d, i) => (d < 0 && x.shape[i - lead] === d ? 1 : d));
  return g.add(Expand, [x, shapeTensor(g, target)], shape, x.dtype);
}

/** Sums a broadcast gradient back down to the shape of the operand it came from. */
export function unbroadcast(dy: Value, shape: Shape): Value {
  if (sameShape(dy.shape, shape)) return dy;
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? reduceSum(dy, axes, true) : dy;
  return reshape(summed, shape);
}
