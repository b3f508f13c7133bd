// Serialises a graph to an ONNX ModelProto (opset 21, plus com.microsoft for quantized kernels).
// Symbolic dims of inputs and outputs are written as dim_param names ("batch_size", "past + seq").

import { create, toBinary } from "@bufbuild/protobuf";
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type TensorProto,
  type ValueInfoProto,
} from "onnx-buf";
import { type DType, type HostArray, type Shape, onnxTypeCode } from "./dtype.js";
import type { AttrValue, Graph, Node, Value } from "./graph.js";

export const OPSET = 21;
const IR_VERSION = 10n;

export interface GraphOutputs {
  [name: string]: Value;
}

/**
 * Constants the outputs depend on: what the ONNX file holds as initializers (unless lifted).
 */
export function usedConstants(graph: Graph, outputs: GraphOutputs): Value[] {
  const outs = Object.values(outputs);
  const used = new Set<Value>(outs.filter((v) => v.kind === "constant"));
  for (const node of liveNodes(graph, outs)) for (const x of node.inputs) if (x.kind === "constant") used.add(x);
  return graph.constants.filter((c) => used.has(c));
}

/**
 * The graph as ONNX bytes. Constants in `lift` are written as graph inputs instead of initializers
 * (the runtime feeds them): protobuf caps a file at 2 GB, and frozen weights past that must travel
 * beside it.
 */
/**
 * Where initializers of at least `minBytes` go instead of the ModelProto (ONNX external data): the
 * writer hands each one's bytes to `place`, which returns its offset in the file named `location`
 * (relative to the model file).
 */
export interface ExternalData {
  location: string;
  minBytes: number;
  place(bytes: Uint8Array): number;
}

export function toOnnxBytes(graph: Graph, outputs: GraphOutputs, lift: ReadonlySet<Value> = new Set(), external?: ExternalData): Uint8Array {
  const names = new Map<Value, string>();
  const outputEntries = Object.entries(outputs);
  const extraNodes: ReturnType<typeof create<typeof NodeProtoSchema>>[] = [];
  for (const [name, v] of outputEntries) {
    if (v.kind === "node" && !names.has(v)) names.set(v, name);
    else {
      // Inputs, constants and values already exported under another name need an Identity.
      extraNodes.push(create(NodeProtoSchema, { opType: "Identity", input: [nameOf(v, names)], output: [name], name: `out_${name}` }));
    }
  }

  const live = liveNodes(graph, outputEntries.map(([, v]) => v));
  const usedConstants = new Set<Value>();
  const nodes = live.map((node, i) => {
    for (const x of node.inputs) if (x.kind === "constant") usedConstants.add(x);
    return create(NodeProtoSchema, {
      opType: node.op.type,
      domain: node.op.domain ?? "",
      name: `n${i}_${node.op.type}`,
      input: node.inputs.map((x) => nameOf(x, names)),
      output: outputNames(node, names),
      attribute: Object.entries(node.attrs).map(([k, a]) => attribute(k, a)),
    });
  });
  for (const [, v] of outputEntries) if (v.kind === "constant") usedConstants.add(v);

  const g = create(GraphProtoSchema, {
    name: "slimtune",
    node: [...nodes, ...extraNodes],
    input: [...graph.inputs, ...graph.constants.filter((c) => usedConstants.has(c) && lift.has(c))].map((v) => valueInfo(v.name!, v)),
    output: outputEntries.map(([name, v]) => valueInfo(name, v)),
    initializer: graph.constants.filter((c) => usedConstants.has(c) && !lift.has(c)).map((c) => tensorProto(c, external)),
  });
  const model = create(ModelProtoSchema, {
    irVersion: IR_VERSION,
    producerName: "slimtune",
    opsetImport: [
      create(OperatorSetIdProtoSchema, { domain: "", version: BigInt(OPSET) }),
      create(OperatorSetIdProtoSchema, { domain: "com.microsoft", version: 1n }),
    ],
    graph: g,
  });
  return toBinary(ModelProtoSchema, model);
}

function nameOf(v: Value, names: Map<Value, string>): string {
  if (v.name) return v.name;
  let n = names.get(v);
  if (!n) {
    n = `v${v.id}`;
    names.set(v, n);
  }
  return n;
}

/** A node's output names in the op's order: "" for an optional output left out, none after the last wanted one. */
function outputNames(node: Node, names: Map<Value, string>): string[] {
  const out = node.outputs.map((v) => (v ? nameOf(v, names) : ""));
  while (out.length > 1 && out[out.length - 1] === "") out.pop();
  return out;
}

/** Nodes the outputs depend on, in graph (dependency) order. */
function liveNodes(graph: Graph, outputs: Value[]): Node[] {
  const live = new Set<Node>();
  const stack = outputs.slice();
  while (stack.length > 0) {
    const node = stack.pop()!.producer;
    if (!node || live.has(node)) continue;
    live.add(node);
    stack.push(...node.inputs);
  }
  return graph.nodes.filter((n) => live.has(n));
}

function attribute(name: string, a: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (typeof a === "number") return create(AttributeProtoSchema, { name, type: T.INT, i: BigInt(a) });
  if (typeof a === "string") return create(AttributeProtoSchema, { name, type: T.STRING, s: new TextEncoder().encode(a) });
  if (Array.isArray(a)) return create(AttributeProtoSchema, { name, type: T.INTS, ints: a.map(BigInt) });
  if ("float" in a) return create(AttributeProtoSchema, { name, type: T.FLOAT, f: a.float });
  if ("tensor" in a) {
    const { dtype, data } = a.tensor;
    return create(AttributeProtoSchema, { name, type: T.TENSOR, t: rawTensor(`${name}_value`, dtype, [data.length], data) });
  }
  return create(AttributeProtoSchema, { name, type: T.FLOATS, floats: a.floats });
}

function valueInfo(name: string, v: Value): ValueInfoProto {
  const shape = create(TensorShapeProtoSchema, {
    dim: v.shape.map((d) =>
      create(TensorShapeProto_DimensionSchema, {
        value: d >= 0 ? { case: "dimValue", value: BigInt(d) } : { case: "dimParam", value: v.graph.dims.name(d) },
      }),
    ),
  });
  const type = create(TypeProtoSchema, {
    value: { case: "tensorType", value: create(TypeProto_TensorSchema, { elemType: onnxTypeCode[v.dtype], shape }) },
  });
  return create(ValueInfoProtoSchema, { name, type });
}

function tensorProto(v: Value, external?: ExternalData): TensorProto {
  const data = v.data!;
  if (!external || data.byteLength < external.minBytes) return rawTensor(v.name!, v.dtype, v.shape, data);
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const offset = external.place(bytes);
  const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
  return create(TensorProtoSchema, {
    name: v.name!,
    dims: v.shape.map(BigInt),
    dataType: onnxTypeCode[v.dtype],
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [entry("location", external.location), entry("offset", String(offset)), entry("length", String(bytes.byteLength))],
  });
}

function rawTensor(name: string, dtype: DType, shape: Shape, data: HostArray): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dims: shape.map(BigInt),
    dataType: onnxTypeCode[dtype],
    rawData: new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength),
  });
}
