// Matrix products: batched MatMul (attention) and 2-D Gemm with transposes (every linear layer).

import { broadcastShapes, fmtShape } from "../dtype.js";
import type { OpDef, Value } from "../graph.js";
import { transposeLast2, unbroadcast } from "./shape.js";

const MatMul: OpDef = {
  type: "MatMul",
  vjp: (node, dy) => {
    const [a, b] = node.inputs as [Value, Value];
    return [unbroadcast(matmul(dy, transposeLast2(b)), a.shape), unbroadcast(matmul(transposeLast2(a), dy), b.shape)];
  },
};

/** Batched a @ b over the last two axes, broadcasting the leading ones. */
export function matmul(a: Value, b: Value): Value {
  if (a.rank < 2 || b.rank < 2) throw new RangeError(`matmul needs rank >= 2: ${a} @ ${b}`);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2) throw new RangeError(`matmul inner dims differ: ${a} @ ${b}`);
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return a.graph.add(MatMul, [a, b], [...batch, m, n], a.dtype);
}

interface GemmMeta {
  transA: boolean;
  transB: boolean;
  alpha: number;
}

const Gemm: OpDef = {
  type: "Gemm",
  vjp: (node, dy) => {
    const [a, b] = node.inputs as [Value, Value];
    const { transA, transB, alpha } = node.meta as unknown as GemmMeta;
    // Y = α op(A) op(B); each case picks the transposes that avoid materialising one.
    if (!transA && !transB) return [gemm(dy, b, { transB: true, alpha }), gemm(a, dy, { transA: true, alpha })];
    if (!transA && transB) return [gemm(dy, b, { alpha }), gemm(dy, a, { transA: true, alpha })];
    if (transA && !transB) return [gemm(b, dy, { transB: true, alpha }), gemm(a, dy, { alpha })];
    return [gemm(b, dy, { transA: true, transB: true, alpha }), gemm(dy, a, { transA: true, transB: true, alpha })];
  },
};

/** 2-D α·op(a)·op(b). A linear layer with HF weight W [out, in] is gemm(x, W, { transB: true }). */
export function gemm(a: Value, b: Value, opts: { transA?: boolean; transB?: boolean; alpha?: number } = {}): Value {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const alpha = opts.alpha ?? 1;
  if (a.rank !== 2 || b.rank !== 2) throw new RangeError(`gemm needs 2-D operands: ${a}, ${b}`);
  const [m, k] = transA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [k2, n] = transB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  if (k !== k2) {
    throw new RangeError(`gemm inner dims differ: ${fmtShape(a.shape)}${transA ? "ᵀ" : ""} · ${fmtShape(b.shape)}${transB ? "ᵀ" : ""}`);
  }
  const attrs = { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha: { float: alpha } };
  return a.graph.add(Gemm, [a, b], [m, n], a.dtype, attrs, { transA, transB, alpha });
}
