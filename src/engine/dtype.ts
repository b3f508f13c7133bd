// Element types the engine knows, with their ONNX codes and JavaScript storage.

export type DType = "float32" | "float64" | "float16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";
export type Shape = readonly number[];

export type HostArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** ONNX TensorProto.DataType codes. */
export const onnxTypeCode: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** Element count of a static shape; a symbolic dim (negative, see dims.ts) has no count here. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) {
    if (d < 0) throw new RangeError(`numel of ${fmtShape(shape)}: a symbolic dim has no static count`);
    n *= d;
  }
  return n;
}

export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float16" || dtype === "float64";
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtShape(shape: Shape): string {
  return `[${shape.map((d) => (d < 0 ? "?" : String(d))).join(", ")}]`;
}

/** Resolves a possibly negative axis against a rank. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Numpy-style broadcast of two shapes. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`cannot broadcast ${fmtShape(a)} with ${fmtShape(b)}`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** A typed array of `dtype` holding `values` (numbers; int64 as BigInt). */
export function hostArray(dtype: DType, values: ArrayLike<number>): HostArray {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "int64":
      return BigInt64Array.from(Array.from(values, (x) => BigInt(x)));
    case "int32":
      return Int32Array.from(values);
    case "int16":
      return Int16Array.from(values);
    case "int8":
      return Int8Array.from(values);
    case "uint8":
    case "bool":
      return Uint8Array.from(values);
    case "float16":
      throw new TypeError("float16 host arrays are not built from numbers");
  }
}
