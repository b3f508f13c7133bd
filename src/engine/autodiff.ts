// Reverse-mode autodiff: appends to the graph the nodes that compute d(loss)/d(param) for chosen
// parameters, using each op's VJP. The result is plain ONNX ops, since ONNX Runtime has no
// gradient ops of its own. Segments marked with Graph.checkpointed are recomputed in the backward
// (activation checkpointing) instead of differentiated through their forward nodes.

import { fmtShape, hostArray, isFloat, numel, sameShape } from "./dtype.js";
import type { Graph, Node, Segment, Value } from "./graph.js";
import { add, mul } from "./ops/elementwise.js";
import { reduceSum } from "./ops/reduce.js";
import { slice } from "./ops/shape.js";

export interface GradOptions {
  /** Recompute checkpointed segments in the backward (default false: they are differentiated as plain nodes). */
  checkpoint?: boolean;
}

/**
 * Gradients of a scalar `loss` with respect to each of `wrt`. A parameter the loss does not
 * depend on gets a zero-filled constant so callers can treat every result alike.
 */
export function grad(loss: Value, wrt: readonly Value[], opts: GradOptions = {}): Value[] {
  if (numel(loss.shape) !== 1) throw new RangeError(`grad: loss must be a scalar, got ${fmtShape(loss.shape)}`);
  const g = loss.graph;
  const grads = new Map<Value, Value>();
  grads.set(loss, g.constant(hostArray(loss.dtype, [1]), loss.shape, loss.dtype));
  // Graph nodes are appended in dependency order, so walking them backwards is a valid reverse
  // topological order; nodes appended by VJPs are beyond the snapshot and never revisited.
  const order = g.nodes.slice();
  const segments = opts.checkpoint ? g.segments.filter((s) => s.end > s.start) : [];
  backprop(g, order, nodesBetween(loss, wrt), grads, segments, wrt);
  return wrt.map((p) => grads.get(p) ?? g.constant(hostArray(p.dtype, new Array<number>(numel(p.shape)).fill(0)), p.shape, p.dtype));
}

/** Walks `order` backwards, adding each needed node's VJP into `grads`; checkpointed segments are rebuilt and walked instead. */
function backprop(g: Graph, order: readonly Node[], needed: Set<Node>, grads: Map<Value, Value>, segments: readonly Segment[], wrt: readonly Value[]): void {
  const byEnd = new Map(segments.map((s) => [s.end - 1, s]));
  for (let i = order.length - 1; i >= 0; i--) {
    const segment = byEnd.get(i);
    if (segment) {
      recompute(g, order, segment, needed, grads, wrt);
      i = segment.start;
      continue;
    }
    const node = order[i]!;
    if (!needed.has(node)) continue;
    // Multi-output ops (fused inference kernels) have no VJP; a gradient reaching any output is an error.
    if (node.outputs.length > 1 && node.outputs.some((v) => v && grads.has(v))) throw new Error(`op ${node.op.type} has several outputs and no gradient, but lies between the loss and a parameter`);
    const dy = grads.get(node.output);
    if (!dy) continue;
    const custom = g.customVjps.get(node.output);
    if (!custom && !node.op.vjp) throw new Error(`op ${node.op.type} has no gradient but lies between the loss and a parameter`);
    const dxs = custom ? custom.vjp(dy) : node.op.vjp!(node, dy);
    (custom ? custom.inputs : node.inputs).forEach((x, j) => {
      const dx = dxs[j];
      if (!dx || !isFloat(x.dtype)) return;
      if (!sameShape(dx.shape, x.shape)) {
        throw new Error(`VJP of ${node.op.type} gave ${fmtShape(dx.shape)} for input ${x}`);
      }
      const prev = grads.get(x);
      grads.set(x, prev ? add(prev, dx) : dx);
    });
  }
}

/**
 * The backward of one checkpointed segment: builds fn again on x' (x plus zero times one element of
 * dy, so the copy can only run once dy exists and no optimizer merges it with the forward's nodes),
 * then differentiates the copy from dy down to x' and the parameters it reads.
 */
function recompute(g: Graph, order: readonly Node[], s: Segment, needed: Set<Node>, grads: Map<Value, Value>, wrt: readonly Value[]): void {
  for (let j = s.start; j < s.end; j++) {
    const v = order[j]!.output;
    if (v !== s.y && grads.has(v)) throw new Error(`${v} is built inside a checkpointed segment but used outside it; checkpoint a segment whose only result is its output`);
  }
  const dy = grads.get(s.y);
  if (!dy || !order.slice(s.start, s.end).some((n) => needed.has(n))) return;
  let probe = dy;
  for (let axis = 0; axis < probe.rank; axis++) probe = slice(probe, axis, 0, 1);
  const gate = mul(reduceSum(probe, [...probe.shape.keys()]), g.scalar(0, dy.dtype));
  const x2 = add(s.x, gate);
  const from = g.nodes.length;
  const y2 = s.fn(x2);
  const copy = g.nodes.slice(from);
  const inner = new Map<Value, Value>([[y2, dy]]);
  backprop(g, copy, nodesBetween(y2, [...wrt, x2]), inner, [], wrt);
  for (const [v, d] of inner) {
    // Parameters read inside the segment collect their gradient; x' hands its own to x.
    const target = v === x2 ? s.x : wrt.includes(v) ? v : null;
    if (!target || !isFloat(target.dtype)) continue;
    const prev = grads.get(target);
    grads.set(target, prev ? add(prev, d) : d);
  }
}

/** Nodes on some path from a parameter in `wrt` to `loss`. */
function nodesBetween(loss: Value, wrt: readonly Value[]): Set<Node> {
  const targets = new Set(wrt);
  const memo = new Map<Value, boolean>();
  const out = new Set<Node>();
  // Iterative post-order DFS: model graphs are thousands of nodes deep.
  const stack: Array<{ v: Value; expanded: boolean }> = [{ v: loss, expanded: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (memo.has(top.v)) {
      stack.pop();
      continue;
    }
    const node = top.v.producer;
    if (!node) {
      memo.set(top.v, targets.has(top.v));
      stack.pop();
      continue;
    }
    if (!top.expanded) {
      top.expanded = true;
      for (const x of node.inputs) if (!memo.has(x)) stack.push({ v: x, expanded: false });
      continue;
    }
    const reaches = node.inputs.some((x) => memo.get(x) === true);
    memo.set(top.v, reaches);
    if (reaches) out.add(node);
    stack.pop();
  }
  return out;
}
