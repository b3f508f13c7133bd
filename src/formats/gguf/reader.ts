// Reads a GGUF v2/v3 file's header (typed key/values and tensor infos) and, on request, a tensor's
// values as float32. Every size read from the file is checked against what remains of the file
// (and against fixed caps) before anything is allocated, and the layout rules llama.cpp's gguf.cpp
// enforces are enforced here too (formats.md §3.3): unique keys and tensor names, at most 4 dims,
// element counts that fit, known types, rows of whole blocks, and each tensor at the running
// offset rounded up to the alignment, inside the file.
//
// Written here rather than with @huggingface/gguf: that parser is asynchronous over a ranged fetch
// (model loading here is synchronous), keeps the last of duplicate keys, and checks neither tensor
// types, offsets nor the data section; those checks are the point of this module.

import fs from "node:fs";
import { SlimtuneError } from "../../core/errors.js";
import { regularFileSize, withIo } from "../../core/io.js";
import { GGML_TYPES, GGML_TYPE_COUNT, GGML_TYPE_NAMES, type GgmlType, decodeRows, ggmlTypeById, rowBytes } from "./ggml-types.js";
import { GGUF_ALIGNMENT, GGUF_VALUE_TYPES, type GgufScalarType } from "./writer.js";

/** Caps on counts a header may claim (far above any real model, far below what breaks memory). */
const MAX_TENSORS = 1 << 20;
const MAX_KV = 1 << 20;
const MAX_STRING_BYTES = 64 << 20;
// The longest real arrays are vocabularies and merge lists (≤ 1 M entries); each element becomes a JS value.
const MAX_ARRAY_LENGTH = 1 << 24;

export type GgufMetaValue = number | bigint | string | boolean | Array<number | bigint | string | boolean>;

export interface GgufEntry {
  /** The GGUF value type (for arrays: "array", with the element type in `of`). */
  type: keyof typeof GGUF_VALUE_TYPES;
  of?: GgufScalarType;
  value: GgufMetaValue;
}

export interface GgufTensorInfo {
  name: string;
  ne: number[];
  type: GgmlType;
  /** Absolute byte offset in the file. */
  offset: number;
  bytes: number;
  count: number;
}

export interface GgufFile {
  /** The path, or the name a page's picked file goes by (for messages). */
  file: string;
  /** The whole file when it was parsed from bytes (a page's picked file); tensors are then read from here, not the disk. */
  bytes?: Uint8Array;
  version: number;
  metadata: Map<string, GgufEntry>;
  tensors: Map<string, GgufTensorInfo>;
}

const typeNames = Object.fromEntries(Object.entries(GGUF_VALUE_TYPES).map(([k, v]) => [v, k])) as Record<number, keyof typeof GGUF_VALUE_TYPES>;
const scalarBytes: Record<GgufScalarType, number> = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8, string: 8 };

/** Reads the file's header through a growing window, never past the end of the file. */
class HeaderReader {
  private buf = new Uint8Array(0);
  private start = 0; // file offset of buf[0]
  pos = 0; // file offset of the next byte
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(
    /** Fills `into` with the file's bytes from offset `at`. */
    private readonly read: (into: Uint8Array, at: number) => void,
    readonly size: number,
    private readonly file: string,
  ) {}

  fail(field: string, why: string): never {
    // Keys and names come from the file and may be megabytes long: cap what the message quotes.
    const shown = field.length > 120 ? `${field.slice(0, 120)}…` : field;
    throw new SlimtuneError("E_GGUF", `${shown}: ${why.length > 300 ? `${why.slice(0, 300)}…` : why}`, this.file);
  }

  private need(n: number, field: string): DataView {
    if (n > this.size - this.pos) this.fail(field, `needs ${n} bytes at offset ${this.pos}, but the file ends at ${this.size} (truncated GGUF — download it again)`);
    if (this.pos + n > this.start + this.buf.length) {
      const length = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
      this.buf = new Uint8Array(length);
      this.read(this.buf, this.pos);
      this.start = this.pos;
    }
    const view = new DataView(this.buf.buffer, this.pos - this.start, n);
    this.pos += n;
    return view;
  }

  u32(field: string): number {
    return this.need(4, field).getUint32(0, true);
  }
  i32(field: string): number {
    return this.need(4, field).getInt32(0, true);
  }
  /** A uint64 count that must stay below `max` (and a safe integer). */
  count(field: string, max: number): number {
    const v = this.need(8, field).getBigUint64(0, true);
    if (v > BigInt(max)) this.fail(field, `claims ${v}, more than ${max} — the file is corrupt or not a model GGUF`);
    return Number(v);
  }
  u64(field: string): bigint {
    return this.need(8, field).getBigUint64(0, true);
  }
  i64(field: string): bigint {
    return this.need(8, field).getBigInt64(0, true);
  }
  /** A length or count that must fit both a cap and the bytes left in the file (`each` bytes per item). */
  length(field: string, cap: number, each: number): number {
    const n = this.count(field, cap);
    const left = this.size - this.pos;
    if (n * each > left) this.fail(field, `claims ${n}, but only ${left} bytes are left in the file (truncated or corrupt GGUF)`);
    return n;
  }
  string(field: string): string {
    const n = this.length(`${field} (string length)`, MAX_STRING_BYTES, 1);
    const view = this.need(n, field);
    try {
      return this.decoder.decode(new Uint8Array(view.buffer, view.byteOffset, n));
    } catch {
      return this.fail(field, "is not valid UTF-8");
    }
  }
  scalar(type: GgufScalarType, field: string): number | bigint | string | boolean {
    switch (type) {
      case "u8": return this.need(1, field).getUint8(0);
      case "i8": return this.need(1, field).getInt8(0);
      case "bool": return this.need(1, field).getUint8(0) !== 0;
      case "u16": return this.need(2, field).getUint16(0, true);
      case "i16": return this.need(2, field).getInt16(0, true);
      case "u32": return this.u32(field);
      case "i32": return this.i32(field);
      case "f32": return this.need(4, field).getFloat32(0, true);
      case "f64": return this.need(8, field).getFloat64(0, true);
      case "u64": return this.need(8, field).getBigUint64(0, true);
      case "i64": return this.i64(field);
      case "string": return this.string(field);
    }
  }
}

/** Opens a GGUF file and checks its whole layout; tensor values are read later by readTensor. */
export function readGgufHeader(file: string): GgufFile {
  const stat = withIo(file, "read the GGUF file", () => fs.statSync(file, { throwIfNoEntry: false }));
  if (!stat) throw new SlimtuneError("E_NOT_FOUND", "GGUF file not found", file);
  // Refuses folders, FIFOs and devices before opening: a FIFO would block, a device has no size.
  const size = regularFileSize(file, "GGUF");
  const fd = withIo(file, "open the GGUF file", () => fs.openSync(file, "r"));
  try {
    return parseHeader(new HeaderReader((into, at) => fs.readSync(fd, into, 0, into.length, at), size, file), file);
  } finally {
    fs.closeSync(fd);
  }
}

/** The same checks on a GGUF file already in memory (a page's picked file); `name` is what messages call it. */
export function parseGgufBytes(bytes: Uint8Array, name: string): GgufFile {
  const header = parseHeader(new HeaderReader((into, at) => into.set(bytes.subarray(at, at + into.length)), bytes.length, name), name);
  return { ...header, bytes };
}

function parseHeader(r: HeaderReader, file: string): GgufFile {
  const magic = r.u32("magic");
  if (magic !== 0x46554747) r.fail("magic", `is 0x${magic.toString(16)}, not "GGUF"; this is not a GGUF file`);
  const version = r.u32("version");
  if ((version & 0xffff) === 0) r.fail("version", "is big-endian; slimtune reads little-endian GGUF files only");
  if (version !== 2 && version !== 3) r.fail("version", `is ${version}; slimtune reads GGUF versions 2 and 3`);
  const nTensors = r.count("tensor_count", MAX_TENSORS);
  const nKv = r.count("metadata_kv_count", MAX_KV);

  const metadata = new Map<string, GgufEntry>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string(`metadata key ${i}`);
    if (!key) r.fail(`metadata key ${i}`, "is empty");
    if (metadata.has(key)) r.fail(key, "appears twice (llama.cpp refuses duplicate keys)");
    const typeId = r.i32(`${key} (value type)`);
    const type = typeNames[typeId];
    if (!type) r.fail(key, `has value type ${typeId}; GGUF types are 0–12`);
    if (type !== "array") {
      metadata.set(key, { type, value: r.scalar(type, key) });
      continue;
    }
    const ofId = r.i32(`${key} (array element type)`);
    const of = typeNames[ofId];
    if (!of || of === "array") r.fail(key, `is an array of type ${ofId}; nested arrays and unknown types are not GGUF`);
    const n = r.length(`${key} (array length)`, MAX_ARRAY_LENGTH, scalarBytes[of]);
    const values: Array<number | bigint | string | boolean> = new Array(n);
    for (let j = 0; j < n; j++) values[j] = r.scalar(of, `${key}[${j}]`);
    metadata.set(key, { type, of, value: values });
  }

  const align = metadata.get("general.alignment");
  let alignment = GGUF_ALIGNMENT;
  if (align) {
    if (align.type !== "u32" || typeof align.value !== "number" || align.value === 0 || (align.value & (align.value - 1)) !== 0) {
      r.fail("general.alignment", `is ${String(align.value)} (${align.type}); it must be a uint32 power of two`);
    }
    alignment = align.value;
  }

  const infos: Array<Omit<GgufTensorInfo, "offset"> & { relative: bigint }> = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.string(`tensor ${i} name`);
    if (new TextEncoder().encode(name).byteLength > 63) r.fail(`tensor "${name}"`, "name is longer than 63 bytes (GGML_MAX_NAME)");
    if (names.has(name)) r.fail(`tensor "${name}"`, "appears twice");
    names.add(name);
    const nDims = r.u32(`tensor "${name}" n_dims`);
    if (nDims < 1 || nDims > 4) r.fail(`tensor "${name}" n_dims`, `is ${nDims}; ggml tensors have 1 to 4 dims`);
    const ne: number[] = [];
    let count = 1n;
    for (let d = 0; d < nDims; d++) {
      const v = r.i64(`tensor "${name}" ne[${d}]`);
      if (v < 0n) r.fail(`tensor "${name}" ne[${d}]`, `is ${v}; dims are non-negative`);
      count *= v;
      if (count > BigInt(Number.MAX_SAFE_INTEGER)) r.fail(`tensor "${name}" ne`, "element count overflows (the file is corrupt)");
      ne.push(Number(v));
    }
    const typeId = r.i32(`tensor "${name}" type`);
    if (typeId < 0 || typeId >= GGML_TYPE_COUNT) r.fail(`tensor "${name}" type`, `is ${typeId}, not a ggml type (0–${GGML_TYPE_COUNT - 1})`);
    const type = ggmlTypeById(typeId);
    if (!type) {
      r.fail(`tensor "${name}" type`, `is ${GGML_TYPE_NAMES[typeId] ?? typeId}; slimtune reads ${Object.keys(GGML_TYPES).join(", ")} — re-quantize the model to one of those (llama-quantize … Q8_0)`);
    }
    if (ne[0]! % type.blockSize !== 0) r.fail(`tensor "${name}" ne[0]`, `is ${ne[0]}, not a multiple of ${type.name}'s block of ${type.blockSize}`);
    const relative = r.u64(`tensor "${name}" offset`);
    infos.push({ name, ne, type, count: Number(count), bytes: rowBytes(type, Number(count)), relative });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  const tensors = new Map<string, GgufTensorInfo>();
  let expected = 0;
  for (const t of infos) {
    if (t.relative !== BigInt(expected)) {
      r.fail(`tensor "${t.name}" offset`, `is ${t.relative}; llama.cpp requires ${expected} (each tensor right after the previous one, aligned to ${alignment})`);
    }
    const offset = dataStart + expected;
    if (offset + t.bytes > r.size) {
      r.fail(`tensor "${t.name}"`, `data [${offset}, ${offset + t.bytes}) lies past the end of the file (${r.size} bytes; truncated GGUF — download it again)`);
    }
    tensors.set(t.name, { name: t.name, ne: t.ne, type: t.type, count: t.count, bytes: t.bytes, offset });
    expected += Math.ceil(t.bytes / alignment) * alignment;
  }
  return { file, version, metadata, tensors };
}

/** A tensor's values as float32 (dequantized), in ggml order (ne[0] fastest). */
export function readTensor(gguf: GgufFile, name: string): Float32Array {
  const t = gguf.tensors.get(name);
  if (!t) throw new SlimtuneError("E_GGUF", `has no tensor "${name}"`, gguf.file);
  if (gguf.bytes) return decodeRows(t.type, gguf.bytes.subarray(t.offset, t.offset + t.bytes), t.count);
  const bytes = new Uint8Array(t.bytes);
  const fd = withIo(gguf.file, "read the GGUF file", () => fs.openSync(gguf.file, "r"));
  try {
    fs.readSync(fd, bytes, 0, t.bytes, t.offset);
  } finally {
    fs.closeSync(fd);
  }
  return decodeRows(t.type, bytes, t.count);
}
