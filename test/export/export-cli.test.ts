// `slimtune export` from the command line (dist/: build first) on a 3-bit GPTQ folder: without
// --dtype GGUF refuses with E_ARG naming the --dtype values that would change the layers and writes
// nothing; with --dtype q4_0 --data it writes the file and reports each change with its KL in --json.
// ONNX holds the 3-bit codes losslessly in 4-bit fields and says so.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { saveGptqFolder } from "../../src/formats/quantized/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, WIKITEXT_TEST, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const slimtune = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe("slimtune export keeps what the model is", () => {
  const dir = scratchDir("export-cli");
  const q3 = path.join(dir, "q3");
  beforeAll(() => {
    saveGptqFolder(q3, quantizeModel(LlamaModel.load(REF_MODEL), { scheme: "rtn", bits: 3, groupSize: 64, symmetric: false }));
  });

  it("no --dtype: E_ARG naming --dtype, nothing written", () => {
    const out = path.join(dir, "refused.gguf");
    const r = slimtune(["export", "--format", "gguf", "--model", q3, "--out", out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/E_ARG: these quantized layers cannot be written at their own bits: rtn 3-bit g64 asymmetric .*--dtype layer-bits.*q4_0 \/ q4_k for every matrix/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it("onnx, no --dtype: the 3-bit codes go into MatMulNBits' 4-bit fields, reported with KL 0", () => {
    const web = slimtune(["export", "--format", "onnx", "--model", q3, "--data", WIKITEXT_TEST, "--out", path.join(dir, "web"), "--json"]);
    expect(web.code, web.stderr).toBe(0);
    const j = JSON.parse(web.stdout.trim().split("\n").at(-1)!) as { dtype: string; changes: Array<{ kind: string; from: string; to: string; kl: number }>; total_kl: number };
    expect(j.dtype).toBe("q4");
    expect(j.changes).toEqual([expect.objectContaining({ kind: "widened", from: "rtn 3-bit g64 asymmetric", to: "MatMulNBits 4-bit (3-bit stored as 4-bit codes, values unchanged)", kl: 0 })]);
    expect(j.total_kl).toBe(0);
  });

  it("--dtype q4_0 --data: the file, and each change with its KL in --json", () => {
    const out = path.join(dir, "q4_0.gguf");
    const r = slimtune(["export", "--format", "gguf", "--model", q3, "--dtype", "q4_0", "--data", WIKITEXT_TEST, "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { changes: Array<{ kind: string; from: string; to: string; kl: number }>; total_kl: number; kl_tokens: number };
    expect(fs.statSync(out).size).toBeGreaterThan(0);
    const reround = j.changes.find((c) => c.kind === "re-rounded")!;
    expect(reround).toMatchObject({ from: "rtn 3-bit g64 asymmetric", to: "Q4_0" });
    expect(reround.kl).toBeGreaterThan(0);
    expect(j.total_kl).toBeGreaterThan(0);
    expect(j.kl_tokens).toBe(512);
  });
});
