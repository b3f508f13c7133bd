// Data files as typed errors or valid loads: regular UTF-8 text only (NUL and invalid UTF-8 named by
// byte offset), FIFOs and devices refused unopened, token-bounded reading that stops early, TSVs of
// any length, and labels bounded before a head is allocated.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { firstInvalidTextByte, readTextFile, tokenizeFile } from "../../src/data/text-file.js";
import { MAX_LABELS, labelCount, readLabelledTsv } from "../../src/data/tsv.js";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { classifyTask } from "../../src/train/classify-task.js";
import { expectSlimtuneError, refModelDir, tempDir, wikitextTest } from "../formats/helpers.js";

const root = tempDir("data-files");
let n = 0;
const file = (name: string, content: string | Uint8Array) => {
  const p = path.join(root, `${n++}-${name}`);
  fs.writeFileSync(p, content);
  return p;
};

describe("text files must be regular files of UTF-8 text", () => {
  it("a NUL byte → E_DATA naming its byte offset", () => {
    const p = file("nul.txt", Buffer.concat([Buffer.from("hello wörld"), Buffer.from([0]), Buffer.from("more")]));
    expectSlimtuneError(() => readTextFile(p), "E_DATA", "byte offset 12", "NUL", p);
  });

  it.each([
    ["a stray continuation byte", [0x80], 5],
    ["0xff", [0xff], 5],
    ["an overlong encoding", [0xc0, 0x80], 5],
    ["a UTF-16 surrogate", [0xed, 0xa0, 0x80], 5],
    ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80], 5],
    ["a truncated sequence at the end", [0xe2, 0x82], 5],
  ])("%s → E_DATA at the right offset", (_label, bytes, offset) => {
    const p = file("bad.txt", Buffer.concat([Buffer.from("abcde"), Buffer.from(bytes), Buffer.from(bytes.length === 2 && bytes[0] === 0xe2 ? "" : "xyz")]));
    expectSlimtuneError(() => readTextFile(p), "E_DATA", `byte offset ${offset}`, "invalid UTF-8");
  });

  it("firstInvalidTextByte accepts every valid width and allows a cut-off tail only when asked", () => {
    const ok = Buffer.from("a é € 😀 z");
    expect(firstInvalidTextByte(ok)).toBe(-1);
    const cut = ok.subarray(0, ok.indexOf(Buffer.from("😀")) + 2);
    expect(firstInvalidTextByte(cut)).toBe(ok.indexOf(Buffer.from("😀")));
    expect(firstInvalidTextByte(cut, true)).toBe(-1);
  });

  it("a binary file fails at once (bytes of ref-llama-5m's weights)", () => {
    const weights = fs.readFileSync(path.join(refModelDir, "model.safetensors")).subarray(0, 1 << 20);
    const p = file("binary.txt", weights);
    const err = expectSlimtuneError(() => readTextFile(p), "E_DATA", "byte offset");
    expect(err.message).toMatch(/byte offset \d+: (a NUL byte|invalid UTF-8)/);
  });

  it("a FIFO or /dev/zero as --data → E_IO 'not a regular file' (not 'is a folder'), without opening it", async () => {
    const fifo = path.join(root, "data.fifo");
    execFileSync("mkfifo", [fifo]);
    const tokenizer = await loadTokenizer(refModelDir);
    for (const p of [fifo, "/dev/zero"]) {
      const err = expectSlimtuneError(() => readTextFile(p), "E_IO", "not a regular file", p);
      expect(err.message).not.toContain("is a folder");
      expectSlimtuneError(() => tokenizeFile(p, tokenizer, 1000), "E_IO", "not a regular file");
    }
    expectSlimtuneError(() => readTextFile(root), "E_IO", "is a folder");
    expectSlimtuneError(() => readTextFile(path.join(root, "nope.txt")), "E_NOT_FOUND");
  });

  it("an empty or whitespace-only file → E_DATA, bounded or not", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    for (const content of ["", "  \n\n \t\n"]) {
      const p = file("empty.txt", content);
      expectSlimtuneError(() => tokenizeFile(p, tokenizer), "E_DATA", "empty");
      expectSlimtuneError(() => tokenizeFile(p, tokenizer, 100), "E_DATA", "empty");
    }
  });
});

describe("tokenizeFile with a token bound", () => {
  it("returns exactly the first N tokens of the whole file's encoding", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    const whole = tokenizeFile(wikitextTest, tokenizer);
    expect(whole.length).toBe(449_010);
    // 10 M is past the end: read whole in one step, it must equal the unbounded result.
    for (const bound of [2, 1000, 30_000, 10_000_000]) {
      const ids = tokenizeFile(wikitextTest, tokenizer, bound);
      expect(ids.length).toBe(Math.min(bound, whole.length));
      expect(ids).toEqual(whole.subarray(0, ids.length));
    }
  });

  it("stops reading once it has enough: text followed by binary garbage loads when bounded, fails unbounded", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    const text = fs.readFileSync(wikitextTest).subarray(0, 400_000);
    const garbage = new Uint8Array(8 << 20).fill(0);
    const p = file("text-then-binary.txt", Buffer.concat([text, garbage]));
    const t0 = performance.now();
    const ids = tokenizeFile(p, tokenizer, 5000);
    expect(ids.length).toBe(5000);
    expect((performance.now() - t0) / 1000).toBeLessThan(2);
    expectSlimtuneError(() => tokenizeFile(p, tokenizer), "E_DATA", `byte offset ${text.length}`);
    expectSlimtuneError(() => tokenizeFile(p, tokenizer, 10_000_000), "E_DATA", `byte offset ${text.length}`);
  });

  it("a file of one long line is cut at spaces, with the same first tokens", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    const line = fs.readFileSync(wikitextTest, "utf8").slice(0, 300_000).replaceAll("\n", " ");
    const p = file("one-line.txt", line);
    const whole = tokenizer.encode(line);
    const ids = tokenizeFile(p, tokenizer, 2000);
    expect(Array.from(ids)).toEqual(whole.slice(0, 2000));
  });

  it("a bound below 2 or not an integer → E_ARG", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    for (const bound of [0, 1, 2.5, Number.NaN]) expectSlimtuneError(() => tokenizeFile(wikitextTest, tokenizer, bound), "E_ARG");
  });
});

describe("labelled TSV files", () => {
  it("130,000 rows load (no Math.max spread over every label)", () => {
    const rows = Array.from({ length: 130_000 }, (_, i) => `sentence ${i}\t${i % 3}`);
    const p = file("big.tsv", `sentence\tlabel\n${rows.join("\n")}\n`);
    const { examples, numLabels } = readLabelledTsv(p);
    expect(examples.length).toBe(130_000);
    expect(numLabels).toBe(3);
    expect(labelCount(Array.from({ length: 300_000 }, (_, i) => ({ label: i % 7 })), 2)).toBe(7);
    expect(labelCount([], 2)).toBe(2);
  });

  it("a label of 99999999999 → E_DATA naming the file and line, before anything is allocated", () => {
    const p = file("huge-label.tsv", "sentence\tlabel\ngood\t1\nbad\t99999999999\n");
    expectSlimtuneError(() => readLabelledTsv(p), "E_DATA", "line 3", '"99999999999"', `${MAX_LABELS} classes`, p);
  });

  it("a declared label count bounds the labels", () => {
    const p = file("declared.tsv", "sentence\tlabel\na\t0\nb\t2\n");
    expect(readLabelledTsv(p, { numLabels: 3 }).numLabels).toBe(3);
    expectSlimtuneError(() => readLabelledTsv(p, { numLabels: 2 }), "E_DATA", "line 3", "declared 2 labels");
  });

  it("a header line of a megabyte is quoted, not printed whole", () => {
    const p = file("long-header.tsv", `${"x".repeat(1 << 20)}\nrow\n`);
    const err = expectSlimtuneError(() => readLabelledTsv(p), "E_DATA", "no \"label\" column");
    expect(err.message.length).toBeLessThan(400);
  });

  it("classifyTask refuses a head of 1e11 labels before allocating it", () => {
    const config = parseLlamaConfig(JSON.parse(fs.readFileSync(path.join(refModelDir, "config.json"), "utf8")), "config.json");
    const make = (numLabels: number) => () => classifyTask(config, [], [], { batch: 2, maxLen: 16, numLabels, padId: 0, seed: 0 });
    expectSlimtuneError(make(1e11), "E_DATA", "100000000000 labels");
    expectSlimtuneError(make(0), "E_DATA", "0 labels");
    expect(make(3)().fixed.num_labels).toBe(3);
  });
});
