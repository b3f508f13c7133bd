// Tests for atomic file and folder replacement (src/util/atomic.ts), used by every format writer.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { replaceDirAtomic, writeFileAtomic } from "../../src/core/atomic.js";
import { expectSlimtuneError, tempDir } from "../formats/helpers.js";

const dir = tempDir("atomic");
const leftovers = (folder: string) => fs.readdirSync(folder).filter((f) => f.includes(".tmp-") || f.includes(".old-"));

describe("writeFileAtomic", () => {
  it.each<[string, Uint8Array | string | Uint8Array[], string]>([
    ["a string", "héllo\n", "héllo\n"],
    ["bytes", Uint8Array.from([104, 105]), "hi"],
    ["chunks", [Uint8Array.from([97]), new Uint8Array(0), Uint8Array.from([98, 99])], "abc"],
  ])("writes %s, replacing the old content, leaving no temp file", (label, data, expected) => {
    const file = path.join(dir, "nested", `${label.replace(" ", "-")}.txt`);
    writeFileAtomic(file, "old content that is longer");
    writeFileAtomic(file, data);
    expect(fs.readFileSync(file, "utf8")).toBe(expected);
    expect(leftovers(path.dirname(file))).toEqual([]);
  });
});

describe("replaceDirAtomic", () => {
  it("creates a new folder", () => {
    const target = path.join(dir, "fresh");
    replaceDirAtomic(target, (tmp) => fs.writeFileSync(path.join(tmp, "a.txt"), "a"));
    expect(fs.readdirSync(target)).toEqual(["a.txt"]);
  });

  it("replaces an existing folder wholesale", () => {
    const target = path.join(dir, "existing");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "old.txt"), "old");
    replaceDirAtomic(target, (tmp) => fs.writeFileSync(path.join(tmp, "new.txt"), "new"));
    expect(fs.readdirSync(target)).toEqual(["new.txt"]);
    expect(leftovers(dir)).toEqual([]);
  });

  it("leaves the folder untouched and removes the temp dir when fill throws", () => {
    const target = path.join(dir, "kept");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "old.txt"), "old");
    let seenTmp = "";
    expect(() =>
      replaceDirAtomic(target, (tmp) => {
        seenTmp = tmp;
        fs.writeFileSync(path.join(tmp, "partial.txt"), "x");
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(path.dirname(seenTmp)).toBe(dir);
    expect(fs.existsSync(seenTmp)).toBe(false);
    expect(fs.readdirSync(target)).toEqual(["old.txt"]);
  });

  it("refuses to replace a file with a folder", () => {
    const target = path.join(dir, "a-file");
    fs.writeFileSync(target, "precious");
    expectSlimtuneError(() => replaceDirAtomic(target, () => {}), "E_ARG", target);
    expect(fs.readFileSync(target, "utf8")).toBe("precious");
  });
});
