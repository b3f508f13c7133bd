// `slimtune quantize --method gptq --target q4_k --out model.gguf` end to end (spawns dist/cli/main.js;
// build with `npx tsc -p tsconfig.build.json` first): a GGUF file whose calibrated layers are Q4_K
// blocks, which slimtune reads back (`--model file.gguf`); and the options it refuses.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { loadBase } from "../../src/models/load.js";
import { REF_MODEL, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = scratchDir("quantize-target");
const slimtune = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe("slimtune quantize --target", () => {
  it("GPTQ onto Q4_K writes a GGUF file: 36 calibrated Q4_K layers, down_proj at llama.cpp's fallback Q5_0", () => {
    const out = path.join(dir, "gptq-q4_k.gguf");
    const r = slimtune(["quantize", "--model", REF_MODEL, "--method", "gptq", "--target", "q4_k", "--calib", WIKITEXT_VALID, "--calib-samples", "4", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ target: "q4_k", calibrated_layers: 36 });
    const g = readGgufHeader(out);
    expect(g.tensors.get("blk.3.attn_q.weight")!.type.name).toBe("Q4_K");
    expect(g.tensors.get("blk.3.ffn_down.weight")!.type.name).toBe("Q5_0");
    expect(loadBase(out).kind).toBe("float");
    // Its report sits beside the file, as export's does for a GGUF.
    expect(fs.existsSync(`${out}.report.html`) && fs.existsSync(`${out}.report.json`)).toBe(true);
    expect(JSON.parse(fs.readFileSync(`${out}.report.json`, "utf8"))).toMatchObject({ command: "quantize" });
  });

  it("refuses --target without --method gptq, an --out that is not .gguf, and --act-order", () => {
    const base = ["quantize", "--model", REF_MODEL, "--calib", WIKITEXT_VALID, "--target", "q4_k"];
    expect(slimtune([...base, "--out", path.join(dir, "a.gguf")]).stderr).toMatch(/E_ARG.*--method gptq/);
    expect(slimtune([...base, "--method", "gptq", "--out", path.join(dir, "folder")]).stderr).toMatch(/E_ARG.*\.gguf/);
    expect(slimtune([...base, "--method", "gptq", "--act-order", "--out", path.join(dir, "b.gguf")]).stderr).toMatch(/E_ARG.*act-order/);
    expect(slimtune([...base.slice(0, -1), "q7_k", "--method", "gptq", "--out", path.join(dir, "c.gguf")]).stderr).toMatch(/E_ARG.*--target "q7_k" is unknown/);
  });
});
