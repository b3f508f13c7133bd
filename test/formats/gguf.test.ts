// The GGUF codec: ggml's block layouts and reference rounding, write → read round trips, and the
// corrupt files the reader must refuse with a typed error naming the file and field (truncated, a
// tensor offset past the end, an unknown type, an element count that overflows, a string claiming
// gigabytes, duplicate keys) before allocating anything of the claimed size.

import fs from "node:fs";
import path from "node:path";
import { GGUFValueType, gguf } from "@huggingface/gguf";
import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { GGML_TYPES, decodeRows, encodeRows } from "../../src/formats/gguf/ggml-types.js";
import { permuteQK } from "../../src/formats/gguf/llama.js";
import { readGgufHeader, readTensor } from "../../src/formats/gguf/reader.js";
import { encodeGguf, writeGguf } from "../../src/formats/gguf/writer.js";
import { scratchDir } from "../helpers/paths.js";

const dir = scratchDir("gguf-codec");

describe("ggml blocks", () => {
  const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 0.37) * (i % 7) - 0.5 * (i === 40 ? 9 : 0));

  it("Q8_0: d = amax / 127 in float16, codes round half away from zero", () => {
    const bytes = encodeRows(GGML_TYPES.Q8_0, x);
    expect(bytes.byteLength).toBe(2 * 34);
    const y = decodeRows(GGML_TYPES.Q8_0, bytes, 64);
    const view = new DataView(bytes.buffer);
    const codes = Array.from({ length: 32 }, (_, j) => view.getInt8(2 + j));
    expect(Math.max(...codes.map(Math.abs))).toBe(127);
    for (let i = 0; i < 64; i++) expect(Math.abs(y[i]! - x[i]!)).toBeLessThan(6 / 127);
  });

  it("Q4_0: the largest magnitude maps to −8; byte j holds elements j (low nibble) and j + 16", () => {
    const block = Float32Array.from({ length: 32 }, (_, j) => (j === 3 ? -8 : j === 20 ? 7 : 0));
    const bytes = encodeRows(GGML_TYPES.Q4_0, block);
    expect(bytes.byteLength).toBe(18);
    expect(new DataView(bytes.buffer).getUint16(0, true)).toBe(0x3c00); // d = −8 / −8 = 1.0
    expect(bytes[2 + 3]! & 15).toBe(0); // −8 → nibble 0
    expect(bytes[2 + 4]! >> 4).toBe(15); // element 20 = 7 → nibble 15 in byte 4's high half
    expect(Array.from(decodeRows(GGML_TYPES.Q4_0, bytes, 32))).toEqual(Array.from(block));
  });

  it("F16 and F32 round-trip; the Q/K permutation is undone by its inverse", () => {
    expect(decodeRows(GGML_TYPES.F32, encodeRows(GGML_TYPES.F32, x), 64)).toEqual(x);
    const half = decodeRows(GGML_TYPES.F16, encodeRows(GGML_TYPES.F16, x), 64);
    for (let i = 0; i < 64; i++) expect(Math.abs(half[i]! - x[i]!)).toBeLessThan(4e-3);
    const rows = Float32Array.from({ length: 2 * 8 * 3 }, (_, i) => i);
    const g = permuteQK(rows, 2, 8, "gguf");
    // GGUF row 2i + t of a head = HF row t·d/2 + i: row 1 of head 0 is HF row 4.
    expect(Array.from(g.subarray(3, 6))).toEqual([12, 13, 14]);
    expect(permuteQK(g, 2, 8, "hf")).toEqual(rows);
  });
});

/** A small valid file: two keys and one F32 tensor "w" [32, 2]. */
function smallFile(): Uint8Array {
  const chunks = encodeGguf(
    [
      ["general.architecture", { type: "string", value: "llama" }],
      ["general.alignment", { type: "u32", value: 32 }],
    ],
    [{ name: "w", ne: [32, 2], type: GGML_TYPES.F32, data: encodeRows(GGML_TYPES.F32, Float32Array.from({ length: 64 }, (_, i) => i)) }],
  );
  return Buffer.concat(chunks);
}

/** Offset of the tensor info of "w" (its name's length field). */
function tensorInfoAt(bytes: Uint8Array): number {
  const buf = Buffer.from(bytes);
  for (let i = 0; i < buf.length - 9; i++) if (buf.readBigUInt64LE(i) === 1n && buf[i + 8] === 0x77 && buf.readUInt32LE(i + 9) === 2) return i;
  throw new Error("tensor info not found");
}

function refusal(bytes: Uint8Array, name: string): SlimtuneError {
  const file = path.join(dir, `${name}.gguf`);
  fs.writeFileSync(file, bytes);
  try {
    readGgufHeader(file);
  } catch (e) {
    expect(e).toBeInstanceOf(SlimtuneError);
    expect((e as SlimtuneError).code).toBe("E_GGUF");
    expect((e as SlimtuneError).message).toContain(file);
    return e as SlimtuneError;
  }
  throw new Error(`${name}: the reader accepted a corrupt file`);
}

describe("GGUF files", () => {
  it("write → read keeps every key's type and every tensor's bytes", () => {
    const file = path.join(dir, "ok.gguf");
    writeGguf(
      file,
      [
        ["a.u32", { type: "u32", value: 7 }],
        ["a.f32", { type: "f32", value: 0.5 }],
        ["a.bool", { type: "bool", value: true }],
        ["a.strings", { type: "array", of: "string", values: ["x", "Ġy", ""] }],
        ["a.ints", { type: "array", of: "i32", values: [1, -2, 3] }],
      ],
      [
        { name: "q", ne: [32, 3], type: GGML_TYPES.Q8_0, data: encodeRows(GGML_TYPES.Q8_0, new Float32Array(96).fill(0.25)) },
        { name: "n", ne: [5], type: GGML_TYPES.F32, data: encodeRows(GGML_TYPES.F32, Float32Array.of(1, 2, 3, 4, 5)) },
      ],
    );
    const g = readGgufHeader(file);
    expect(g.metadata.get("a.u32")).toEqual({ type: "u32", value: 7 });
    expect(g.metadata.get("a.bool")).toEqual({ type: "bool", value: true });
    expect(g.metadata.get("a.strings")).toEqual({ type: "array", of: "string", value: ["x", "Ġy", ""] });
    expect(g.metadata.get("a.ints")?.value).toEqual([1, -2, 3]);
    expect(g.tensors.get("q")!.offset % 32).toBe(0);
    expect(g.tensors.get("n")!.offset - g.tensors.get("q")!.offset).toBe(128); // 102 bytes padded to 32
    expect(Array.from(readTensor(g, "n"))).toEqual([1, 2, 3, 4, 5]);
    expect(Array.from(readTensor(g, "q")).every((v) => Math.abs(v - 0.25) < 1e-3)).toBe(true);
  });

  it("a second, independent parser (@huggingface/gguf) reads the same keys, types and tensor infos", async () => {
    const file = path.join(dir, "ok.gguf");
    const theirs = await gguf(file, { allowLocalFile: true, typedMetadata: true });
    expect(theirs.typedMetadata["a.u32"]).toMatchObject({ value: 7, type: GGUFValueType.UINT32 });
    expect(theirs.typedMetadata["a.f32"]).toMatchObject({ value: 0.5, type: GGUFValueType.FLOAT32 });
    expect(theirs.typedMetadata["a.strings"]).toMatchObject({ value: ["x", "Ġy", ""], type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING });
    const ours = readGgufHeader(file);
    expect(theirs.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype, Number(theirs.tensorDataOffset + t.offset)])).toEqual(
      [...ours.tensors.values()].map((t) => [t.name, t.ne, t.type.id, t.offset]),
    );
  });

  it("refuses a truncated file: in the header, and in the data", () => {
    const ok = smallFile();
    expect(refusal(ok.subarray(0, 40), "cut-header").message).toMatch(/metadata key 0 \(string length\): claims 20, but only 8 bytes are left in the file \(truncated/);
    expect(refusal(ok.subarray(0, 80), "cut-value").message).toMatch(/metadata key 1 \(string length\): claims 17, but only 3 bytes are left in the file \(truncated/);
    expect(refusal(ok.subarray(0, ok.length - 20), "cut-data").message).toMatch(/tensor "w".*past the end of the file/);
  });

  it("refuses a tensor offset past the end, an unknown type, an IQ type slimtune does not decode, an overflowing element count", () => {
    const ok = smallFile();
    const at = tensorInfoAt(ok);
    const patched = (f: (b: Buffer) => void) => {
      const b = Buffer.from(ok);
      f(b);
      return b;
    };
    // name (8 + 1) · n_dims (4) · ne (2 × 8) · type (4) · offset (8)
    const typeAt = at + 9 + 4 + 16;
    expect(refusal(patched((b) => b.writeBigUInt64LE(1n << 40n, typeAt + 4)), "offset").message).toMatch(/tensor "w" offset: is 1099511627776; llama.cpp requires 0/);
    expect(refusal(patched((b) => b.writeInt32LE(99, typeAt)), "unknown-type").message).toMatch(/tensor "w" type: is 99, not a ggml type/);
    expect(refusal(patched((b) => b.writeInt32LE(16, typeAt)), "iq-type").message).toMatch(/is IQ2_XXS; slimtune reads F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K/);
    expect(refusal(patched((b) => (b.writeBigInt64LE(1n << 40n, at + 13), b.writeBigInt64LE(1n << 40n, at + 21))), "overflow").message).toMatch(/element count overflows/);
    expect(refusal(patched((b) => b.writeBigInt64LE(-5n, at + 21)), "negative").message).toMatch(/ne\[1\]: is -5/);
  });

  it("refuses a metadata string claiming gigabytes, a duplicate key, a bad magic, a nested array", () => {
    const ok = Buffer.from(smallFile());
    // The first key's length field sits right after magic, version and the two counts.
    const huge = Buffer.from(ok);
    huge.writeBigUInt64LE(3n << 30n, 24);
    expect(refusal(huge, "huge-string").message).toMatch(/metadata key 0 \(string length\): claims 3221225472/);
    const dup = Buffer.concat(encodeGguf([["k", { type: "u32", value: 1 }]], []));
    const kv = dup.subarray(24, 24 + 9 + 4 + 4); // "k": length, name, type, u32
    const twice = Buffer.concat([dup.subarray(0, 24), kv, kv]);
    twice.writeBigUInt64LE(2n, 16);
    expect(refusal(twice, "duplicate").message).toMatch(/k: appears twice/);
    expect(refusal(Buffer.from("GGML0000000000000000000000"), "magic").message).toMatch(/not a GGUF file/);
    const nested = Buffer.concat(encodeGguf([["k", { type: "array", of: "u8", values: [1] }]], []));
    nested.writeInt32LE(9, 24 + 8 + 1 + 4);
    expect(refusal(nested, "nested").message).toMatch(/nested arrays/);
  });
});
