// Tests for the safetensors reader/writer: round trips, F16/BF16 decoding, and every corruption the reader must reject.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";

const dir = tempDir("safetensors");

/** Assembles a file by hand: 8-byte length, header text, data (the length can be forced). */
function handMade(name: string, header: object | string, data: Uint8Array, forcedLength?: bigint): string {
  const text = typeof header === "string" ? header : JSON.stringify(header);
  const headerBytes = Buffer.from(text, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(forcedLength ?? BigInt(headerBytes.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([prefix, headerBytes, data]));
  return file;
}

describe("writeSafetensors → SafetensorsFile round trip", () => {
  it("keeps F32 and I64 values, shapes, order and metadata", () => {
    const file = path.join(dir, "roundtrip.safetensors");
    const a = Float32Array.from([1.5, -2, 3.25, 0, 1e30, -0.125]);
    const b = BigInt64Array.from([1n, -2n, 2n ** 62n]);
    const empty = new Float32Array(0);
    writeSafetensors(
      file,
      [
        { name: "a", dtype: "F32", shape: [2, 3], data: a },
        { name: "b", dtype: "I64", shape: [3], data: b },
        { name: "empty", dtype: "F32", shape: [0, 4], data: empty },
      ],
      { format: "pt" },
    );
    const st = SafetensorsFile.open(file);
    expect(st.names()).toEqual(["a", "b", "empty"]);
    expect(st.metadata).toEqual({ format: "pt" });
    expect(st.entries.get("a")).toEqual({ dtype: "F32", shape: [2, 3], begin: 0, end: 24 });
    expect(st.float32("a")).toEqual(a);
    const raw = st.raw("b");
    expect(new BigInt64Array(raw.slice().buffer)).toEqual(b);
    expect(st.float32("empty").length).toBe(0);
  });

  it("pads the header with spaces to a multiple of 8 bytes", () => {
    const file = path.join(dir, "padded.safetensors");
    writeSafetensors(file, [{ name: "x", dtype: "U8", shape: [3], data: Uint8Array.from([1, 2, 3]) }]);
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(bytes.subarray(8, 8 + n).toString("utf8")).toMatch(/^\{.*\} *$/);
    expect(bytes.length).toBe(8 + n + 3);
  });

  it("float32() returns a copy the caller may mutate", () => {
    const file = path.join(dir, "copy.safetensors");
    writeSafetensors(file, [{ name: "x", dtype: "F32", shape: [2], data: Float32Array.from([1, 2]) }]);
    const st = SafetensorsFile.open(file);
    st.float32("x")[0] = 99;
    expect(st.float32("x")[0]).toBe(1);
  });

  it("rejects data whose byte length does not match the shape", () => {
    const file = path.join(dir, "bad-write.safetensors");
    expectSlimtuneError(
      () => writeSafetensors(file, [{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(3) }]),
      "E_ARG",
      '"w"',
      "12 bytes",
      "needs 16",
    );
    expect(fs.existsSync(file)).toBe(false);
  });

  it("reads the reference model's F32 tensors", () => {
    const st = SafetensorsFile.open(path.join(refModelDir, "model.safetensors"));
    expect(st.entries.get("model.norm.weight")).toMatchObject({ dtype: "F32", shape: [256] });
    expect(st.float32("model.embed_tokens.weight").length).toBe(4096 * 256);
  });
});

describe("F16 / BF16 / F64 decoding", () => {
  it.each([
    [0x3c00, 1],
    [0xc000, -2],
    [0x3800, 0.5],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x0400, 2 ** -14],
    [0x8000, -0],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])("F16 bits %i → %d", (bits, value) => {
    const file = handMade(`f16-${bits}.safetensors`, { t: { dtype: "F16", shape: [1], data_offsets: [0, 2] } }, Uint8Array.from([bits & 0xff, bits >> 8]));
    expect(SafetensorsFile.open(file).float32("t")[0]).toBe(value);
  });

  it("F16 NaN stays NaN", () => {
    const file = handMade("f16-nan.safetensors", { t: { dtype: "F16", shape: [1], data_offsets: [0, 2] } }, Uint8Array.from([0x00, 0x7e]));
    expect(SafetensorsFile.open(file).float32("t")[0]).toBeNaN();
  });

  it.each([
    [0x3f80, 1],
    [0xc000, -2],
    [0x4049, 3.140625],
    [0x3c23, 0.0099487305],
    [0x7f80, Infinity],
  ])("BF16 bits %i → %d", (bits, value) => {
    const file = handMade(`bf16-${bits}.safetensors`, { t: { dtype: "BF16", shape: [1], data_offsets: [0, 2] } }, Uint8Array.from([bits & 0xff, bits >> 8]));
    expect(SafetensorsFile.open(file).float32("t")[0]).toBeCloseTo(value, 9);
  });

  it("decodes a [2,2] F16 tensor at an odd offset after a U8 tensor", () => {
    const data = Uint8Array.from([7, 0x00, 0x3c, 0x00, 0x40, 0x00, 0xc2, 0x00, 0x00]);
    const file = handMade(
      "f16-odd.safetensors",
      { u: { dtype: "U8", shape: [1], data_offsets: [0, 1] }, h: { dtype: "F16", shape: [2, 2], data_offsets: [1, 9] } },
      data,
    );
    expect([...SafetensorsFile.open(file).float32("h")]).toEqual([1, 2, -3, 0]);
  });

  it("converts F64 and refuses integer tensors in float32()", () => {
    const file = path.join(dir, "f64.safetensors");
    writeSafetensors(file, [
      { name: "d", dtype: "F64", shape: [2], data: Float64Array.from([0.25, -1e10]) },
      { name: "i", dtype: "I32", shape: [1], data: Int32Array.from([5]) },
    ]);
    const st = SafetensorsFile.open(file);
    expect([...st.float32("d")]).toEqual([0.25, -1e10]);
    expectSlimtuneError(() => st.float32("i"), "E_SAFETENSORS", '"i"', "I32", file);
    expectSlimtuneError(() => st.raw("nope"), "E_SAFETENSORS", '"nope"', file);
  });
});

describe("corrupt files are rejected before any data is read", () => {
  const f32 = (shape: number[], offsets: number[]) => ({ w: { dtype: "F32", shape, data_offsets: offsets } });
  const cases: Array<[string, () => string, string[]]> = [
    ["a file shorter than 8 bytes", () => { const f = path.join(dir, "tiny.safetensors"); fs.writeFileSync(f, Buffer.from([1, 2, 3])); return f; }, ["3 bytes"]],
    ["a header length past the end", () => handMade("hdr-past.safetensors", f32([1], [0, 4]), new Uint8Array(4), 5000n), ["header length 5000"]],
    ["a header length over 100 MB", () => handMade("hdr-huge.safetensors", f32([1], [0, 4]), new Uint8Array(4), 2n ** 60n), ["100 MB"]],
    ["a header that is not JSON", () => handMade("bad-json.safetensors", '{"w": {"dtype": "F32",', new Uint8Array(0)), ["not valid JSON"]],
    ["a header that is not UTF-8", () => { const f = handMade("bad-utf8.safetensors", "{}", new Uint8Array(0)); const b = fs.readFileSync(f); b[9] = 0xff; fs.writeFileSync(f, b); return f; }, ["UTF-8"]],
    ["a header that is a JSON array", () => handMade("array.safetensors", "[]", new Uint8Array(0)), ["JSON object"]],
    ["an unknown dtype", () => handMade("dtype.safetensors", { w: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), ['"w"', "F8_E4M3"]],
    ["a negative dimension", () => handMade("neg.safetensors", f32([-1], [0, 4]), new Uint8Array(4)), ['"w"', "shape"]],
    ["a fractional dimension", () => handMade("frac.safetensors", f32([1.5], [0, 4]), new Uint8Array(4)), ['"w"', "shape"]],
    ["missing data_offsets", () => handMade("no-off.safetensors", { w: { dtype: "F32", shape: [1] } }, new Uint8Array(4)), ['"w"', "data_offsets"]],
    ["begin after end", () => handMade("rev.safetensors", f32([0], [4, 0]), new Uint8Array(4)), ['"w"', "begin after end"]],
    ["offsets past the data (truncated file)", () => handMade("trunc.safetensors", f32([256], [0, 1024]), new Uint8Array(512)), ['tensor "w": data_offsets [0, 1024] end past the 512 bytes of data', "truncated"]],
    ["a size/shape mismatch", () => handMade("size.safetensors", f32([2, 2], [0, 12]), new Uint8Array(12)), ['"w"', "12 bytes", "needs 16"]],
    ["overlapping tensors", () => handMade("overlap.safetensors", { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), ['"b"', "overlaps"]],
    ["a gap between tensors", () => handMade("gap.safetensors", { a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), ['"a"', "gap"]],
    ["trailing bytes after the last tensor", () => handMade("trail.safetensors", f32([1], [0, 4]), new Uint8Array(8)), ["cover 4 of the 8"]],
    ["non-string metadata", () => handMade("meta.safetensors", { __metadata__: { format: 1 } }, new Uint8Array(0)), ["__metadata__", '"format"']],
  ];

  it.each(cases)("%s → E_SAFETENSORS naming the file", (_label, make, mentions) => {
    const file = make();
    const err = expectSlimtuneError(() => SafetensorsFile.open(file), "E_SAFETENSORS", ...mentions);
    expect(err.file).toBe(file);
    expect(err.message).toContain(file);
  });

  it("a missing file → E_NOT_FOUND naming the file", () => {
    const file = path.join(dir, "does-not-exist.safetensors");
    const err = expectSlimtuneError(() => SafetensorsFile.open(file), "E_NOT_FOUND", file);
    expect(err.file).toBe(file);
  });

  it("a truncated copy of the reference model is rejected", () => {
    const bytes = fs.readFileSync(path.join(refModelDir, "model.safetensors"));
    const file = path.join(dir, "ref-truncated.safetensors");
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 1000));
    expectSlimtuneError(() => SafetensorsFile.open(file), "E_SAFETENSORS", "end past", file);
  });
});
