// Shape ops: reshape, transpose, slice, pad, concat, expand, and the broadcast-undo every VJP needs.

import { type Shape, fmtShape, normAxis, numel, sameShape } from "../dtype.js";
import type { OpDef, Value } from "../graph.js";
import { reduceSum } from "./reduce.js";

const Reshape: OpDef = {
  type: "Reshape",
  vjp: (node, dy) => [reshape(dy, node.inputs[0]!.shape), null],
};

export function reshape(x: Value, shape: Shape): Value {
  if (numel(shape) !== numel(x.shape)) {
    throw new RangeError(`reshape ${x} to ${fmtShape(shape)}: element counts differ`);
  }
  if (sameShape(shape, x.shape)) return x;
  return x.graph.add(Reshape, [x, x.graph.int64s(shape)], shape, x.dtype);
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
  shape[a] = xs.reduce((s, x) => s + x.shape[a]!, 0);
  return first.graph.add(Concat, xs, shape, first.dtype, { axis: a }, { axis: a });
}

const Expand: OpDef = {
  type: "Expand",
  vjp: (node, dy) => [unbroadcast(dy, node.inputs[0]!.shape), null],
};

export function expand(x: Value, shape: Shape): Value {
  if (sameShape(x.shape, shape)) return x;
  return x.graph.add(Expand, [x, x.graph.int64s(shape)], shape, x.dtype);
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
