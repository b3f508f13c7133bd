// `slimtune quantize` end to end (spawns dist/cli/main.js; build with `npx tsc -p tsconfig.build.json`
// first, as test/cli does): the size report, a loadable folder, progress on stderr, and typed errors.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadQuantizedFolder } from "../../src/formats/quantized/index.js";
import { refModelDir, sharedDir, tempDir } from "../formats/helpers.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = tempDir("quantize-cli");
const wikiValid = path.join(sharedDir, "data/wikitext-2/valid.txt");
/** A calibration text far shorter than 128 × 256 tokens. */
function tinyText(): string {
  const file = path.join(dir, "tiny.txt");
  fs.writeFileSync(file, "The cat sat on the mat. ".repeat(50));
  return file;
}

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("slimtune quantize", () => {
  it("writes a GPTQ folder and prints the size report as JSON (4-bit, group 64)", () => {
    const out = path.join(dir, "q4g64");
    const r = slimtune(["quantize", "--model", refModelDir, "--bits", "4", "--group-size", "64", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ format: "gptq", scheme: "rtn", bits: 4, groupSize: 64, symmetric: false, zeroPointsWidened: 0 });
    expect(report.fileBytes).toBe(fs.statSync(path.join(out, "model.safetensors")).size);
    expect(report.floatFileBytes).toBe(fs.statSync(path.join(refModelDir, "model.safetensors")).size);
    expect(report.ratio).toBeCloseTo(report.floatFileBytes / report.fileBytes, 10);
    expect(report.bitsPerWeight).toBeCloseTo(4.3125, 10); // 4 + (16 + 4) / 64
    expect(report.fileBytes - report.report.totalBytes).toBeGreaterThan(0);
    expect(report.fileBytes - report.report.totalBytes).toBeLessThan(40_000); // only the JSON header
    expect(r.stderr).toContain("quantize layers 42/42");
    const qm = loadQuantizedFolder(out);
    expect(qm.spec).toEqual({ scheme: "rtn", bits: 4, groupSize: 64, symmetric: false });
  });

  it("prints a readable report for nf4 (default block 64)", () => {
    const out = path.join(dir, "nf4");
    const r = slimtune(["quantize", "--model", refModelDir, "--scheme", "nf4", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/NF4, groups of 64/);
    expect(r.stdout).toMatch(/4\.500 bits\/weight/);
    expect(r.stdout).toMatch(/smaller/);
    expect(loadQuantizedFolder(out).spec).toEqual({ scheme: "nf4", bits: 4, groupSize: 64, symmetric: true });
  });

  it("--method gptq: calibrated act-order checkpoint with per-layer timings", () => {
    const out = path.join(dir, "gptq");
    const r = slimtune(["quantize", "--model", refModelDir, "--method", "gptq", "--calib", wikiValid, "--calib-samples", "8", "--calib-seq", "64", "--act-order", "--bits", "3", "--group-size", "64", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ format: "gptq", method: "gptq", bits: 3, groupSize: 64, methodReport: { calibSamples: 8, calibSeq: 64, actOrder: true, dampPercent: 0.01 } });
    expect(report.methodReport.gptq.layers).toHaveLength(42);
    expect(report.methodReport.gptq.blocks).toHaveLength(6);
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    expect(config.quantization_config).toMatchObject({ desc_act: true, meta: { method: "gptq" } });
    expect(loadQuantizedFolder(out).linears.size).toBe(42);
  });

  // Flags override the defaults --model <ref> --out <dir>/never.
  const errors: Array<[string, () => Record<string, string>, string, RegExp]> = [
    ["bits outside {2,3,4,8}", () => ({ "--bits": "5" }), "E_ARG", /--bits "5".*2, 3, 4 or 8/],
    ["bits not a number", () => ({ "--bits": "four" }), "E_ARG", /--bits "four"/],
    ["group size not dividing K", () => ({ "--group-size": "128" }), "E_ARG", /group size 128 does not divide the 704 input columns \(K\) of model\.layers\.0\.mlp\.down_proj.*use 32, 64 or channel/],
    ["group size not supported", () => ({ "--group-size": "48" }), "E_ARG", /group size 48/],
    ["group size not an integer", () => ({ "--group-size": "abc" }), "E_ARG", /--group-size "abc"/],
    ["nf4 with bits 3", () => ({ "--scheme": "nf4", "--bits": "3" }), "E_ARG", /bits 3 with scheme nf4/],
    ["unknown scheme", () => ({ "--scheme": "gguf" }), "E_ARG", /--scheme "gguf"/],
    ["--model is a file", () => ({ "--model": path.join(refModelDir, "config.json") }), "E_ARG", /config\.json" is a file/],
    ["--model does not exist", () => ({ "--model": "/nonexistent/model" }), "E_NOT_FOUND", /\/nonexistent\/model/],
    ["--model already quantized", () => ({ "--model": path.join(dir, "q4g64") }), "E_ARG", /already quantized/],
    ["--out is --model", () => ({ "--out": refModelDir }), "E_ARG", /--out .* is the --model folder/],
    ["unknown --method", () => ({ "--method": "awq" }), "E_ARG", /--method "awq" is unknown; choose rtn, gptq/],
    ["gptq without --calib", () => ({ "--method": "gptq" }), "E_ARG", /--calib is required/],
    ["gptq calibration text too short", () => ({ "--method": "gptq", "--calib": tinyText(), "--calib-samples": "128" }), "E_DATA", /tiny\.txt: calibration text has \d+ tokens, fewer than --calib-samples 128 × --calib-seq 256/],
    ["gptq with nf4", () => ({ "--method": "gptq", "--calib": wikiValid, "--scheme": "nf4" }), "E_ARG", /--method gptq writes integer codes/],
    ["reallm budget below the smallest shape", () => ({ "--method": "reallm", "--bits-per-weight": "0.3" }), "E_ARG", /--bits-per-weight 0\.3 is below the smallest ReALLM shape for model\.layers\.0\.self_attn\.q_proj.*raise --bits-per-weight/],
    ["reallm rank that does not fit the budget", () => ({ "--method": "reallm", "--rank": "100" }), "E_ARG", /--rank 100 does not fit 3 bits per weight on model\.layers\.0\.self_attn\.q_proj \[256, 256\].*the largest rank that fits is \d+/],
    ["lqlora rank above min(N, K)", () => ({ "--method": "lqlora", "--rank": "300" }), "E_ARG", /--rank 300 must be an integer from 1 to min\(N, K\) = 256/],
  ];
  it.each(errors)("exit 2: %s", (_label, flags, code, mentions) => {
    const all = { "--model": refModelDir, "--out": path.join(dir, "never"), ...flags() };
    const r = slimtune(["quantize", ...Object.entries(all).flat()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error ${code}`);
    expect(r.stderr).toMatch(mentions);
    expect(r.stdout).toBe("");
    expect(fs.existsSync(path.join(dir, "never"))).toBe(false);
  });

  it("missing --out", () => {
    const r = slimtune(["quantize", "--model", refModelDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/E_ARG.*--out is required/);
  });
});
