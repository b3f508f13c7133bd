// Reverse-mode autodiff: appends to the graph the nodes that compute d(loss)/d(param) for chosen
// parameters, using each op's VJP. The result is plain ONNX ops, since ONNX Runtime has no
// gradient ops of its own.

import { fmtShape, hostArray, isFloat, numel, sameShape } from "./dtype.js";
import type { Node, Value } from "./graph.js";
import { add } from "./ops/elementwise.js";

/**
 * Gradients of a scalar `loss` with respect to each of `wrt`. A parameter the loss does not
 * depend on gets a zero-filled constant so callers can treat every result alike.
 */
export function grad(loss: Value, wrt: readonly Value[]): Value[] {
  if (numel(loss.shape) !== 1) throw new RangeError(`grad: loss must be a scalar, got ${fmtShape(loss.shape)}`);
  const g = loss.graph;
  const needed = nodesBetween(loss, wrt);
  const grads = new Map<Value, Value>();
  grads.set(loss, g.constant(hostArray(loss.dtype, [1]), loss.shape, loss.dtype));

  // Graph nodes are appended in dependency order, so walking them backwards is a valid reverse
  // topological order; nodes appended by VJPs are beyond the snapshot and never revisited.
  const order = g.nodes.slice();
  for (let i = order.length - 1; i >= 0; i--) {
    const node = order[i]!;
    if (!needed.has(node)) continue;
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
  return wrt.map((p) => grads.get(p) ?? g.constant(hostArray(p.dtype, new Array<number>(numel(p.shape)).fill(0)), p.shape, p.dtype));
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
