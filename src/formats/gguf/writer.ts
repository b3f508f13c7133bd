// Writes a GGUF v3 file (formats.md §3.1-3.4): header, typed key/values, tensor infos, then the
// tensors, each starting at the running offset rounded up to the alignment, as llama.cpp requires.
// The file appears complete under its name or not at all (temp file + rename).

import { writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { type GgmlType, rowBytes } from "./ggml-types.js";

export const GGUF_ALIGNMENT = 32;

/** Metadata value types by their GGUF ids (§3.2). */
export const GGUF_VALUE_TYPES = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, "array">;

/** A metadata value with the exact GGUF type llama.cpp's loader expects for its key. */
export type GgufValue =
  | { type: Exclude<GgufScalarType, "string" | "bool">; value: number | bigint }
  | { type: "string"; value: string }
  | { type: "bool"; value: boolean }
  | { type: "array"; of: GgufScalarType; values: ReadonlyArray<number | bigint | string | boolean> };

export interface GgufTensor {
  /** ≤ 63 bytes (GGML_MAX_NAME). */
  name: string;
  /** Dims innermost first: an HF weight [N, K] is ne [K, N]. */
  ne: number[];
  type: GgmlType;
  /** The encoded rows (ggml-types encodeRows). */
  data: Uint8Array;
}

export const u32 = (value: number): GgufValue => ({ type: "u32", value });
export const f32 = (value: number): GgufValue => ({ type: "f32", value });
export const str = (value: string): GgufValue => ({ type: "string", value });
export const bool = (value: boolean): GgufValue => ({ type: "bool", value });

const encoder = new TextEncoder();

class ByteSink {
  private chunks: Uint8Array[] = [];
  private current = new DataView(new ArrayBuffer(1 << 16));
  private used = 0;
  length = 0;

  private room(n: number): DataView {
    if (this.used + n > this.current.byteLength) this.flush();
    this.length += n;
    return this.current;
  }
  /** Hands the filled part of the buffer to the chunk list and starts a fresh buffer. */
  private flush(): void {
    if (this.used === 0) return;
    this.chunks.push(new Uint8Array(this.current.buffer, 0, this.used));
    this.current = new DataView(new ArrayBuffer(1 << 16));
    this.used = 0;
  }
  u8(v: number) { this.room(1).setUint8(this.used, v); this.used += 1; }
  i8(v: number) { this.room(1).setInt8(this.used, v); this.used += 1; }
  u16(v: number) { this.room(2).setUint16(this.used, v, true); this.used += 2; }
  i16(v: number) { this.room(2).setInt16(this.used, v, true); this.used += 2; }
  u32(v: number) { this.room(4).setUint32(this.used, v, true); this.used += 4; }
  i32(v: number) { this.room(4).setInt32(this.used, v, true); this.used += 4; }
  f32(v: number) { this.room(4).setFloat32(this.used, v, true); this.used += 4; }
  f64(v: number) { this.room(8).setFloat64(this.used, v, true); this.used += 8; }
  u64(v: number | bigint) { this.room(8).setBigUint64(this.used, BigInt(v), true); this.used += 8; }
  i64(v: number | bigint) { this.room(8).setBigInt64(this.used, BigInt(v), true); this.used += 8; }
  string(s: string) {
    const b = encoder.encode(s);
    this.u64(b.byteLength);
    this.bytes(b);
  }
  bytes(b: Uint8Array) {
    // Small pieces (keys, token strings) are copied into the current buffer: flushing for each
    // would allocate a fresh 64 KB buffer per token, half a gigabyte for a 4,096-token vocabulary.
    if (b.byteLength <= 4096) {
      const view = this.room(b.byteLength);
      new Uint8Array(view.buffer, this.used, b.byteLength).set(b);
      this.used += b.byteLength;
      return;
    }
    this.flush();
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  pad(alignment: number) {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n > 0) this.bytes(new Uint8Array(n));
  }
  finish(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}

function writeScalar(sink: ByteSink, type: GgufScalarType, v: number | bigint | string | boolean): void {
  switch (type) {
    case "u8": return sink.u8(Number(v));
    case "i8": return sink.i8(Number(v));
    case "u16": return sink.u16(Number(v));
    case "i16": return sink.i16(Number(v));
    case "u32": return sink.u32(Number(v));
    case "i32": return sink.i32(Number(v));
    case "f32": return sink.f32(Number(v));
    case "f64": return sink.f64(Number(v));
    case "u64": return sink.u64(v as number | bigint);
    case "i64": return sink.i64(v as number | bigint);
    case "bool": return sink.u8(v ? 1 : 0);
    case "string": return sink.string(String(v));
  }
}

/** The GGUF bytes of `metadata` and `tensors`, as chunks (tensor data is not copied). */
export function encodeGguf(metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): Uint8Array[] {
  const keys = new Set<string>();
  for (const [k] of metadata) {
    if (!k || keys.has(k)) throw new SlimtuneError("E_ARG", `GGUF metadata key "${k}" is empty or repeated`);
    keys.add(k);
  }
  const sink = new ByteSink();
  sink.bytes(encoder.encode("GGUF"));
  sink.u32(3);
  sink.u64(tensors.length);
  sink.u64(metadata.length);
  for (const [key, v] of metadata) {
    sink.string(key);
    sink.i32(GGUF_VALUE_TYPES[v.type]);
    if (v.type === "array") {
      sink.i32(GGUF_VALUE_TYPES[v.of]);
      sink.u64(v.values.length);
      for (const x of v.values) writeScalar(sink, v.of, x);
    } else writeScalar(sink, v.type, v.value);
  }
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (encoder.encode(t.name).byteLength > 63 || names.has(t.name)) throw new SlimtuneError("E_ARG", `GGUF tensor name "${t.name}" is longer than 63 bytes or repeated`);
    names.add(t.name);
    const count = t.ne.reduce((a, b) => a * b, 1);
    if (t.ne[0]! % t.type.blockSize !== 0 || rowBytes(t.type, count) !== t.data.byteLength) {
      throw new SlimtuneError("E_ARG", `GGUF tensor "${t.name}" ne [${t.ne.join(", ")}] does not match ${t.data.byteLength} bytes of ${t.type.name}`);
    }
    sink.string(t.name);
    sink.u32(t.ne.length);
    for (const d of t.ne) sink.i64(d);
    sink.i32(t.type.id);
    sink.u64(offset);
    offset += Math.ceil(t.data.byteLength / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  sink.pad(GGUF_ALIGNMENT);
  for (const t of tensors) {
    sink.bytes(t.data);
    sink.pad(GGUF_ALIGNMENT);
  }
  return sink.finish();
}

/** Writes the file atomically. */
export function writeGguf(file: string, metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): void {
  writeFileAtomic(file, encodeGguf(metadata, tensors));
}
