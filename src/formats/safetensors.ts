// Reads and writes .safetensors files, validating the header as strictly as the Rust reference reader.

import fs from "node:fs";
import { SlimtuneError, quote } from "../core/errors.js";
import { writeFileAtomic } from "../core/atomic.js";
import { regularFileSize, withIo } from "../core/io.js";
import { parseJsonText, shownJson } from "../core/json.js";

export type SafetensorsDType = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const safetensorsDTypeSizes: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offsets relative to the start of the data buffer; `end` is exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: ArrayBufferView;
}

// Same cap as the Rust reader (MAX_HEADER_SIZE); a larger header means a corrupt length field.
const maxHeaderBytes = 100_000_000;
const reexport = "the file is truncated or corrupt — re-download or re-export it";

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.hasOwn(safetensorsDTypeSizes, value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmt(values: readonly number[]): string {
  return `[${values.join(", ")}]`;
}

/** Where a file's tensor bytes come from: the open file (read on demand) or an in-memory copy. */
interface ByteSource {
  /** Bytes [begin, end) of the data section (after the header). */
  read(begin: number, end: number): Uint8Array;
}

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly metadata: Record<string, string>,
    readonly entries: Map<string, SafetensorsEntry>,
    private readonly data: ByteSource,
  ) {}

  /**
   * Opens a file and validates its header; tensor bytes are read from disk only when asked for,
   * so files of any size (a 1 B-parameter model's 5 GB) open without holding them in memory.
   */
  static open(filePath: string): SafetensorsFile {
    // Stat before opening: opening a FIFO blocks forever, and a device (/dev/zero) has no size to check against.
    const st = withIo(filePath, "read the safetensors file", () => fs.statSync(filePath, { throwIfNoEntry: false }));
    if (!st) throw new SlimtuneError("E_NOT_FOUND", "file does not exist; check the path or the model folder", filePath);
    if (st.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", "is a folder, expected a .safetensors file", filePath);
    regularFileSize(filePath, "safetensors");
    const fd = withIo(filePath, "open the safetensors file", () => fs.openSync(filePath, "r"));
    try {
      const size = fs.fstatSync(fd).size;
      const readAt = (position: number, length: number): Uint8Array => {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
          const n = fs.readSync(fd, out, done, length - done, position + done);
          if (n === 0) throw new SlimtuneError("E_SAFETENSORS", `file ended at byte ${position + done} while ${length} bytes were expected there; ${reexport}`, filePath);
          done += n;
        }
        return out;
      };
      const fail = (message: string): never => {
        throw new SlimtuneError("E_SAFETENSORS", message, filePath);
      };
      if (size < 8) fail(`file is ${size} bytes, shorter than the 8-byte header length; ${reexport}`);
      const n = checkedHeaderLength(readAt(0, 8), size, fail);
      const { metadata, entries } = parseHeaderBytes(readAt(8, n), size - 8 - n, fail);
      const dataStart = 8 + n;
      // Each read reopens the file: a SafetensorsFile holds no descriptor, so nothing leaks if it is dropped.
      const source: ByteSource = {
        read: (begin, end) => {
          const rfd = withIo(filePath, "read the safetensors file", () => fs.openSync(filePath, "r"));
          try {
            const out = new Uint8Array(end - begin);
            let done = 0;
            while (done < out.length) {
              const got = fs.readSync(rfd, out, done, out.length - done, dataStart + begin + done);
              if (got === 0) throw new SlimtuneError("E_SAFETENSORS", `file shrank while being read (byte ${dataStart + begin + done}); ${reexport}`, filePath);
              done += got;
            }
            return out;
          } finally {
            fs.closeSync(rfd);
          }
        },
      };
      return new SafetensorsFile(filePath, metadata, entries, source);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Parses an in-memory file; `filePath` is only used in error messages. */
  static fromBytes(filePath: string, input: Uint8Array): SafetensorsFile {
    const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    const fail = (message: string): never => {
      throw new SlimtuneError("E_SAFETENSORS", message, filePath);
    };
    if (bytes.byteLength < 8) {
      fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length; ${reexport}`);
    }
    const n = checkedHeaderLength(bytes.subarray(0, 8), bytes.byteLength, fail);
    const data = bytes.subarray(8 + n);
    const { metadata, entries } = parseHeaderBytes(bytes.subarray(8, 8 + n), data.byteLength, fail);
    return new SafetensorsFile(filePath, metadata, entries, { read: (begin, end) => data.slice(begin, end) });
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  private entry(name: string): SafetensorsEntry {
    const entry = this.entries.get(name);
    if (!entry) {
      throw new SlimtuneError(
        "E_SAFETENSORS",
        `no tensor named ${quote(name)}; the file has ${this.entries.size} tensors (e.g. ${this.names().slice(0, 3).map((s) => quote(s)).join(", ")})`,
        this.path,
      );
    }
    return entry;
  }

  /** The tensor's bytes, a fresh copy (read from disk for an opened file). */
  raw(name: string): Uint8Array {
    const { begin, end } = this.entry(name);
    return this.data.read(begin, end);
  }

  /** A fresh Float32Array with the tensor's values; F16, BF16 and F64 are converted. */
  float32(name: string): Float32Array {
    const entry = this.entry(name);
    // raw() returns a fresh, aligned copy, whereas the file offset may not be a multiple of the element size.
    return this.toFloat32(name, entry.dtype, this.raw(name).buffer as ArrayBuffer, elementCount(entry.shape));
  }

  /**
   * Rows [row0, row0 + rows) of a tensor of two or more dimensions (rows along the first) as a fresh
   * Float32Array: only those rows' bytes are read, so a large tensor (a 128k-token embedding) can be
   * consumed block by block without its whole float32 copy in memory at once.
   */
  float32Rows(name: string, row0: number, rows: number): Float32Array {
    const entry = this.entry(name);
    const [n = 0, ...rest] = entry.shape;
    if (entry.shape.length < 2 || !Number.isInteger(row0) || !Number.isInteger(rows) || row0 < 0 || rows < 0 || row0 + rows > n) {
      throw new SlimtuneError("E_ARG", `rows [${row0}, ${row0 + rows}) of tensor ${quote(name)} with shape ${fmt(entry.shape)}: pass a range inside its first dimension`, this.path);
    }
    const rowElements = elementCount(rest);
    const rowBytes = rowElements * safetensorsDTypeSizes[entry.dtype];
    const begin = entry.begin + row0 * rowBytes;
    return this.toFloat32(name, entry.dtype, this.data.read(begin, begin + rows * rowBytes).buffer as ArrayBuffer, rows * rowElements);
  }

  private toFloat32(name: string, dtype: SafetensorsDType, aligned: ArrayBuffer, count: number): Float32Array {
    switch (dtype) {
      case "F32":
        return new Float32Array(aligned, 0, count);
      case "F64":
        return Float32Array.from(new Float64Array(aligned, 0, count));
      case "F16":
        return f16ToF32(new Uint16Array(aligned, 0, count));
      case "BF16":
        return bf16ToF32(new Uint16Array(aligned, 0, count));
      default:
        throw new SlimtuneError(
          "E_SAFETENSORS",
          `tensor ${quote(name)} has dtype ${dtype}; expected a floating-point dtype (F32, F16, BF16, F64) — a quantized checkpoint needs its own loader`,
          this.path,
        );
    }
  }
}

/** The header length from the first 8 bytes, bounded by the cap and the file size before anything is read. */
function checkedHeaderLength(prefix: Uint8Array, fileBytes: number, fail: (message: string) => never): number {
  const headerLength = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(maxHeaderBytes)) fail(`header length ${headerLength} exceeds the 100 MB limit; ${reexport}`);
  const n = Number(headerLength);
  if (8 + n > fileBytes) fail(`header length ${n} runs past the end of the ${fileBytes}-byte file; ${reexport}`);
  return n;
}

/** Decodes and validates the JSON header against the size of the data section. */
function parseHeaderBytes(
  headerBytes: Uint8Array,
  dataBytes: number,
  fail: (message: string) => never,
): { metadata: Record<string, string>; entries: Map<string, SafetensorsEntry> } {
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    fail(`header is not valid UTF-8; ${reexport}`);
  }
  let header: unknown;
  try {
    header = parseJsonText(text, { file: "", code: "E_SAFETENSORS", invalidFix: reexport });
  } catch (err) {
    fail(`header ${(err as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`header must be a JSON object mapping tensor names to entries; ${reexport}`);
  }
  return parseHeader(header as Record<string, unknown>, dataBytes, fail);
}

function parseHeader(
  header: Record<string, unknown>,
  dataBytes: number,
  fail: (message: string) => never,
): { metadata: Record<string, string>; entries: Map<string, SafetensorsEntry> } {
  const metadata: Record<string, string> = {};
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail(`"__metadata__" must be an object of string values; ${reexport}`);
      }
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          fail(`"__metadata__" field ${quote(key)} is ${shownJson(v)}, expected a string; ${reexport}`);
        }
        metadata[key] = v as string;
      }
      continue;
    }
    const where = `tensor ${quote(name)}`;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      fail(`${where}: entry must be an object with dtype, shape and data_offsets; ${reexport}`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype)) {
      fail(
        `${where}: unknown dtype ${shownJson(dtype)}; expected one of ${Object.keys(safetensorsDTypeSizes).join(", ")} — convert the tensor or re-export the file`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(`${where}: shape ${shownJson(shape)} must be an array of non-negative integers; ${reexport}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`${where}: data_offsets ${shownJson(offsets)} must be two non-negative integers [begin, end]; ${reexport}`);
    }
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    if (begin > end) fail(`${where}: data_offsets ${fmt([begin, end])} has begin after end; ${reexport}`);
    if (end > dataBytes) {
      fail(`${where}: data_offsets ${fmt([begin, end])} end past the ${dataBytes} bytes of data; ${reexport}`);
    }
    const expected = elementCount(dims) * safetensorsDTypeSizes[dtype as SafetensorsDType];
    if (!Number.isSafeInteger(expected) || end - begin !== expected) {
      fail(
        `${where}: data_offsets ${fmt([begin, end])} span ${end - begin} bytes, but shape ${shownJson(dims)} of ${dtype} needs ${expected}; ${reexport}`,
      );
    }
    entries.set(name, { dtype: dtype as SafetensorsDType, shape: dims, begin, end });
  }
  checkCoverage(entries, dataBytes, fail);
  return { metadata, entries };
}

// The reference reader rejects gaps, overlaps and trailing bytes; overlapping tensors would alias memory.
function checkCoverage(
  entries: Map<string, SafetensorsEntry>,
  dataBytes: number,
  fail: (message: string) => never,
): void {
  const sorted = [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const [name, { begin, end }] of sorted) {
    if (begin !== cursor) {
      const problem = begin < cursor ? "overlaps the previous tensor" : `leaves a gap after byte ${cursor}`;
      fail(`tensor ${quote(name)}: data_offsets ${fmt([begin, end])} ${problem}; ${reexport}`);
    }
    cursor = end;
  }
  if (cursor !== dataBytes) {
    fail(`tensors cover ${cursor} of the ${dataBytes} data bytes; trailing bytes are not allowed; ${reexport}`);
  }
}

let f16Table: Float32Array | undefined;

// A 65,536-entry table makes conversion a single lookup and handles subnormals, Inf and NaN exactly.
function f16Lookup(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 31) table[h] = mantissa ? NaN : sign * Infinity;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  f16Table = table;
  return table;
}

function f16ToF32(halves: Uint16Array): Float32Array {
  const table = f16Lookup();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]!]!;
  return out;
}

function bf16ToF32(halves: Uint16Array): Float32Array {
  const bits = new Uint32Array(halves.length);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i]! << 16;
  return new Float32Array(bits.buffer);
}

/** Writes tensors in the given order (header space-padded to 8 bytes) via writeFileAtomic. */
export function writeSafetensors(
  filePath: string,
  tensors: readonly SafetensorsTensor[],
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(filePath, encodeSafetensors(tensors, metadata, filePath));
}

/**
 * A safetensors file as byte chunks (length prefix, header, then each tensor's bytes, uncopied),
 * for a page's download or writeSafetensors; `filePath` is only named in errors.
 */
export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Record<string, string>, filePath?: string): Uint8Array[] {
  const fail = (message: string): never => {
    throw new SlimtuneError("E_ARG", message, filePath);
  };
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") fail(`metadata field "${key}" must be a string, got ${JSON.stringify(value)}`);
    }
    header.__metadata__ = metadata;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const { name, dtype, shape, data } of tensors) {
    if (name === "__metadata__" || Object.hasOwn(header, name)) {
      fail(`tensor name "${name}" is reserved or used twice; give every tensor a unique name`);
    }
    if (!isDType(dtype)) fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
    if (!shape.every(isCount)) fail(`tensor "${name}": shape ${JSON.stringify(shape)} must be non-negative integers`);
    const expected = elementCount(shape) * safetensorsDTypeSizes[dtype];
    if (data.byteLength !== expected) {
      fail(
        `tensor "${name}": data has ${data.byteLength} bytes, but shape ${fmt(shape)} of ${dtype} needs ${expected}; pass data matching the shape`,
      );
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + expected] };
    chunks.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    offset += expected;
  }
  const utf8 = new TextEncoder();
  let json = JSON.stringify(header);
  const jsonBytes = utf8.encode(json).byteLength;
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = utf8.encode(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  return [prefix, headerBytes, ...chunks];
}
