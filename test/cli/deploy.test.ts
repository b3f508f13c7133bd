// `slimtune generate` and `slimtune export` end to end: streaming and --json output, a GGUF model
// as --model, and the bad input the issue lists, each a typed error with exit code 2 and nothing
// half-written in --out.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = scratchDir("cli-deploy");

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectRefusal(args: string[], code: string, message: RegExp) {
  const r = slimtune(args);
  expect(r.stderr).toMatch(new RegExp(`slimtune: error ${code}: `));
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
}

describe("slimtune generate", () => {
  it("streams text, and --json prints prompt_ids, ids, text and both speeds", () => {
    const text = slimtune(["generate", "--model", REF_MODEL, "--prompt", " The tower is", "--max-new-tokens", "12"]);
    expect(text.code).toBe(0);
    const json = slimtune(["generate", "--model", REF_MODEL, "--prompt", " The tower is", "--max-new-tokens", "12", "--json"]);
    const out = JSON.parse(json.stdout) as { prompt_ids: number[]; ids: number[]; text: string; prefill_tokens_per_s: number; decode_tokens_per_s: number };
    expect(out.prompt_ids).toEqual([572, 286, 1612, 345]);
    expect(out.ids.length).toBeGreaterThan(0);
    expect(text.stdout).toBe(`${out.text}\n`);
    expect(out.prefill_tokens_per_s).toBeGreaterThan(0);
    expect(out.decode_tokens_per_s).toBeGreaterThan(0);
  });

  it("a GGUF file works as --model and generates what its source generates", () => {
    const gguf = path.join(dir, "ref.gguf");
    expect(slimtune(["export", "--format", "gguf", "--model", REF_MODEL, "--out", gguf]).code).toBe(0);
    const args = ["--prompt", " The tower is", "--max-new-tokens", "12", "--json"];
    const a = JSON.parse(slimtune(["generate", "--model", REF_MODEL, ...args]).stdout).ids;
    const b = JSON.parse(slimtune(["generate", "--model", gguf, ...args]).stdout).ids;
    expect(b).toEqual(a);
  });

  it("refuses a prompt longer than the context, a token count of 0 or below, and an adapter for another base", () => {
    const long = path.join(dir, "long.txt");
    fs.writeFileSync(long, " the".repeat(1100));
    expectRefusal(["generate", "--model", REF_MODEL, "--prompt-file", long], "E_ARG", /the prompt has 1100 tokens, but the model's context is 1024/);
    expectRefusal(["generate", "--model", REF_MODEL, "--prompt", "x", "--max-new-tokens", "0"], "E_ARG", /--max-new-tokens "0" must be a positive integer/);
    expectRefusal(["generate", "--model", REF_MODEL, "--prompt", "x", "--max-new-tokens", "-4"], "E_ARG", /--max-new-tokens "-4" must be a positive integer/);
    const pruned = prunedRefModel();
    const other = path.join(dir, "other-lora");
    loraForDenseModel(pruned, { rank: 4, alpha: 8, seed: 1, targetModules: ["mlp.up_proj"] }).save(other);
    expectRefusal(["generate", "--model", REF_MODEL, "--adapter", other, "--prompt", "x"], "E_SHAPE", /use the adapter with the base model/);
  });
});

describe("slimtune export", () => {
  it("writes GGUF and ONNX, and refuses bad input without leaving anything in --out", () => {
    const out = path.join(dir, "onnx-out");
    const r = slimtune(["export", "--format", "onnx", "--model", REF_MODEL, "--dtype", "q4", "--out", out, "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).file).toBe(path.join("onnx", "model_q4.onnx"));
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "onnx/model_q4.onnx"]) expect(fs.existsSync(path.join(out, f)), f).toBe(true);

    const bad = path.join(dir, "bad-out");
    expectRefusal(["export", "--format", "gguf", "--model", REF_MODEL, "--dtype", "q7_k", "--out", path.join(bad, "x.gguf")], "E_ARG", /--dtype "q7_k" is not one of f32, f16, q8_0, q4_0/);
    expectRefusal(["export", "--format", "tflite", "--model", REF_MODEL, "--out", bad], "E_ARG", /--format "tflite"/);
    // A truncated GGUF as --model: a typed error naming the file; nothing written.
    const whole = fs.readFileSync(path.join(dir, "ref.gguf"));
    const cut = path.join(dir, "cut.gguf");
    fs.writeFileSync(cut, whole.subarray(0, whole.length - 4096));
    expectRefusal(["export", "--format", "onnx", "--model", cut, "--out", bad], "E_GGUF", new RegExp(`${cut.replace(/[/.]/g, "\\$&")}: tensor "[^"]+": data .* past the end of the file`));
    expectRefusal(["generate", "--model", cut, "--prompt", "x"], "E_GGUF", /truncated GGUF/);
    expectRefusal(["export", "--format", "gguf", "--model", path.join(dir, "ref.gguf"), "--adapter", path.join(dir, "other-lora"), "--out", path.join(bad, "l.gguf")], "E_SHAPE", /export the adapter with the base it was trained on/);
    expect(fs.existsSync(bad)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([]);
  });
});
