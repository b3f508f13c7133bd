// The graph IR: values with shapes and dtypes, produced by nodes of registered ops. Training graphs
// are static (built once per method and shape); generation and exported graphs may name some sizes
// symbolically (dims.ts) so one session serves every batch, sequence and past length.
// A graph is turned into ONNX by onnx-writer.ts.

import { type DType, type HostArray, type Shape, numel, fmtShape, hostArray } from "./dtype.js";
import { SymbolTable } from "./dims.js";

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] } | { tensor: { dtype: DType; data: HostArray } };
export type Attrs = Record<string, AttrValue>;

export interface OpDef {
  /** ONNX op type emitted for this node. */
  readonly type: string;
  readonly domain?: string;
  /**
   * Gradients of the node's inputs given the gradient of its output; null where an input is not
   * differentiable (indices, masks, constant shapes). Absent: the op has no gradient at all.
   */
  readonly vjp?: (node: Node, dy: Value) => Array<Value | null>;
}

export interface Node {
  readonly op: OpDef;
  readonly inputs: readonly Value[];
  /** Emitted as ONNX attributes. */
  readonly attrs: Attrs;
  /** JavaScript-side facts a VJP needs (axes, perms, slice bounds); not emitted. */
  readonly meta: Record<string, unknown>;
  /** The first output (the only one of most ops). */
  readonly output: Value;
  /**
   * Every output in the op's order: [output] for single-output ops; a multi-output op (addMulti)
   * has null where an optional output is not wanted (written as "" in ONNX).
   */
  readonly outputs: readonly (Value | null)[];
}

/** Shape and dtype of one output of a multi-output node. */
export interface OutputSpec {
  shape: Shape;
  dtype: DType;
}

export type ValueKind = "input" | "constant" | "node";

export class Value {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly shape: Shape,
    readonly dtype: DType,
    readonly kind: ValueKind,
    readonly producer: Node | null,
    /** Inputs and constants carry their external name; node outputs get one when emitted. */
    readonly name: string | null,
    readonly data: HostArray | null,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  toString(): string {
    const dims = this.shape.map((d) => (d < 0 ? this.graph.dims.name(d) : String(d)));
    return `${this.name ?? `v${this.id}`}[${dims.join(", ")}]:${this.dtype}`;
  }
}

/** A run of nodes [start, end) computing y = fn(x) that the backward recomputes. */
export interface Segment {
  x: Value;
  y: Value;
  fn: (x: Value) => Value;
  start: number;
  end: number;
}

export class Graph {
  private nextId = 0;
  readonly inputs: Value[] = [];
  readonly constants: Value[] = [];
  readonly nodes: Node[] = [];
  private readonly scalarCache = new Map<string, Value>();
  /** Values whose gradient a hand-written rule gives directly, skipping the nodes that compute them. */
  readonly customVjps = new Map<Value, { inputs: Value[]; vjp: (dy: Value) => Array<Value | null> }>();
  private readonly names = new Set<string>();
  /** Symbolic sizes of this graph (empty for static graphs). */
  readonly dims = new SymbolTable();
  /** Where each base symbol can be read at run time: the first input that has it as a dim. */
  readonly symbolSources = new Map<string, { input: Value; axis: number }>();
  /** Run-time values of symbolic dims, built once (ops/shape.ts dimValue). */
  readonly dimValues = new Map<number, Value>();
  /**
   * ONNX Runtime graph optimizers this graph must run without (session config
   * "optimization.disable_specified_optimizers"), e.g. ConstantFolding where folding would turn
   * compressed frozen weights into float32 copies.
   */
  readonly disabledOptimizers = new Set<string>();
  /** Segments whose activations the backward recomputes instead of keeping (see `checkpointed`). */
  readonly segments: Segment[] = [];

  /** The id of a named symbolic size, e.g. g.sym("batch_size"). */
  sym(name: string): number {
    return this.dims.symbol(name);
  }

  /** A tensor fed at run time: data, and every trainable parameter. Dims may be symbolic. */
  input(name: string, shape: Shape, dtype: DType = "float32"): Value {
    this.checkShape(`input ${name}`, shape);
    this.claimName(name);
    const v = new Value(this, this.nextId++, [...shape], dtype, "input", null, name, null);
    this.inputs.push(v);
    shape.forEach((d, axis) => {
      const base = this.dims.baseName(d);
      if (base !== null && !this.symbolSources.has(base)) this.symbolSources.set(base, { input: v, axis });
    });
    return v;
  }

  /** A tensor baked into the graph as an initializer: frozen weights, masks, tables. */
  constant(data: HostArray, shape: Shape, dtype: DType = "float32", name?: string): Value {
    if (data.length !== numel(shape)) {
      throw new RangeError(`constant ${name ?? ""}: ${data.length} values for shape ${fmtShape(shape)}`);
    }
    const n = name ?? `const_${this.nextId}`;
    this.claimName(n);
    const v = new Value(this, this.nextId++, [...shape], dtype, "constant", null, n, data);
    this.constants.push(v);
    return v;
  }

  /** A shared scalar constant (rank 0, broadcasts anywhere). */
  scalar(x: number, dtype: DType = "float32"): Value {
    const key = `${dtype}:${x}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      v = this.constant(hostArray(dtype, [x]), [], dtype);
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** An int64 vector constant, as ONNX wants for shapes, axes and slice bounds. */
  int64s(values: readonly number[]): Value {
    const key = `i${values.join(",")}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      v = this.constant(BigInt64Array.from(values, BigInt), [values.length], "int64");
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** Appends a node; shape and dtype are inferred by the caller (the op's builder function). */
  add(op: OpDef, inputs: Value[], shape: Shape, dtype: DType, attrs: Attrs = {}, meta: Record<string, unknown> = {}): Value {
    for (const x of inputs) {
      if (x.graph !== this) throw new Error(`${op.type}: input ${x} belongs to another graph`);
    }
    return this.addMulti(op, inputs, [{ shape, dtype }], attrs, meta)[0]!;
  }

  /**
   * Appends a node with several outputs (ORT's fused kernels: SkipSimplifiedLayerNormalization's
   * normalised value and residual sum, GroupQueryAttention's output and present key/value). `outputs`
   * lists them in the op's order, null for an optional output the graph does not want; the first is
   * required. Such ops have no gradient: grad() refuses a loss that depends on one.
   */
  addMulti(op: OpDef, inputs: Value[], outputs: ReadonlyArray<OutputSpec | null>, attrs: Attrs = {}, meta: Record<string, unknown> = {}): Array<Value | null> {
    for (const x of inputs) {
      if (x.graph !== this) throw new Error(`${op.type}: input ${x} belongs to another graph`);
    }
    if (!outputs[0]) throw new Error(`${op.type}: the first output is required`);
    for (const o of outputs) if (o) this.checkShape(op.type, o.shape);
    let values: Array<Value | null> = [];
    const node: Node = {
      op,
      inputs,
      attrs,
      meta,
      get output() {
        return values[0]!;
      },
      get outputs() {
        return values;
      },
    };
    values = outputs.map((o) => (o ? new Value(this, this.nextId++, [...o.shape], o.dtype, "node", node, null, null) : null));
    this.nodes.push(node);
    return values;
  }

  /**
   * Declares d(output)/d(inputs) by a rule instead of by differentiating the nodes between them:
   * for composites whose own gradient is much cheaper than the chain rule's (cross-entropy).
   */
  defineVjp(output: Value, inputs: Value[], vjp: (dy: Value) => Array<Value | null>): void {
    this.customVjps.set(output, { inputs, vjp });
  }

  /** Every dim is a static size or a symbol of this graph (catches arithmetic on symbol ids). */
  private checkShape(what: string, shape: Shape): void {
    for (const d of shape) {
      if (!this.dims.knows(d)) throw new RangeError(`${what}: dimension ${d} is neither a size nor a symbol of this graph`);
    }
  }

  /**
   * y = fn(x), marked for activation checkpointing: when grad() differentiates through it, it
   * builds fn again from x in the backward and differentiates that copy, so the forward's
   * intermediate values die as soon as the forward is done with them. Peak memory then holds each
   * segment's input plus one segment's activations, for one more forward pass of each segment.
   * fn must build its nodes from x and from values created outside it, and nothing built inside
   * it but y may be used outside it.
   */
  checkpointed(x: Value, fn: (x: Value) => Value): Value {
    const start = this.nodes.length;
    const y = fn(x);
    this.segments.push({ x, y, fn, start, end: this.nodes.length });
    return y;
  }

  private claimName(name: string): void {
    if (this.names.has(name)) throw new Error(`graph already has a tensor named "${name}"`);
    this.names.add(name);
  }
}
