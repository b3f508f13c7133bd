// The engine's public surface: graph IR, ops, autodiff and the ONNX Runtime bridge.

export * from "./dtype.js";
export { Graph, Value, type Node, type OpDef, type Attrs, type OutputSpec } from "./graph.js";
export * from "./ops/elementwise.js";
export * from "./ops/matmul.js";
export * from "./ops/nn.js";
export * from "./ops/reduce.js";
export * from "./ops/shape.js";
export * from "./layers.js";
export { grad } from "./autodiff.js";
export { toOnnxBytes, usedConstants, OPSET, type ExternalData, type GraphOutputs } from "./onnx-writer.js";
export { CompiledGraph, type HostTensor, type SessionOptions } from "./runtime.js";
export { GraphCache } from "./graph-cache.js";
