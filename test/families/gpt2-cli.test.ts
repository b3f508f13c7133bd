// The CLI on a tiny GPT-2 model, end to end: quantize (4-bit RTN, and GPTQ, whose block-by-block
// capture adds the position embeddings), finetune with LoRA (float base) and PEQA (the 4-bit
// model), eval and generate with each adapter, export to GGUF (float + GGUF LoRA, and q4_0 keeping
// the codes) and to ONNX (PEQA merged), and generate from an f32 GGUF file read back. Structured
// pruning is refused with E_ARG.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";
import { GPT2_TINY_CONFIG, saveRandomModel } from "../helpers/tiny-families.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;

function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args, "--json"], { encoding: "utf8" });
}

function slimtune(args: string[]): Record<string, unknown> {
  const r = run(args);
  expect(r.status, `slimtune ${args.join(" ")}\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

describe("gpt2 through the CLI", () => {
  const dir = scratchDir("gpt2-cli");
  const model = path.join(dir, "model");
  const q4 = path.join(dir, "q4");
  const train = ["--data", WIKITEXT_VALID, "--steps", "3", "--batch", "2", "--seq", "32", "--eval-tokens", "512"];
  const score = ["--data", WIKITEXT_TEST, "--max-tokens", "1024", "--ctx", "64"];
  const prompt = ["--prompt", " The tower is", "--max-new-tokens", "8", "--ignore-eos"];

  // Separate steps, each under vitest's one-minute RPC window (spawnSync blocks the worker meanwhile).
  beforeAll(() => {
    saveRandomModel(GPT2_TINY_CONFIG, 5, model);
  });

  it("quantize (RTN, and GPTQ with a window within n_positions) and eval", () => {
    slimtune(["quantize", "--model", model, "--bits", "4", "--group-size", "32", "--sym", "--out", q4]);
    expect(JSON.parse(fs.readFileSync(path.join(q4, "config.json"), "utf8")).model_type).toBe("gpt2");
    const gptq = path.join(dir, "gptq");
    slimtune(["quantize", "--model", model, "--method", "gptq", "--bits", "4", "--group-size", "32", "--calib", WIKITEXT_VALID, "--calib-seq", "64", "--out", gptq]);
    const tooLong = run(["quantize", "--model", model, "--method", "gptq", "--bits", "4", "--calib", WIKITEXT_VALID, "--out", path.join(dir, "gptq-long")]);
    expect(tooLong.stderr).toMatch(/E_ARG.*n_positions \(128\)/s);
    const float = slimtune(["eval", "--model", model, ...score]);
    // Learned positions end at n_positions: --allow-long-context cannot extend them.
    const long = run(["eval", "--model", model, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--ctx", "256", "--allow-long-context"]);
    expect(long.status).toBe(2);
    expect(long.stderr).toMatch(/E_ARG.*n_positions \(128\)/s);
    for (const q of [q4, gptq]) {
      const ev = slimtune(["eval", "--model", q, ...score]);
      expect(Number.isFinite(ev.perplexity), JSON.stringify(ev)).toBe(true);
      expect(ev.perplexity as number).toBeLessThan((float.perplexity as number) * 2);
    }
  }, 600_000);

  it("finetune (LoRA, PEQA), eval and generate with each adapter", () => {
    slimtune(["finetune", "--method", "lora", "--model", model, ...train, "--out", path.join(dir, "lora")]);
    const adapterConfig = JSON.parse(fs.readFileSync(path.join(dir, "lora", "adapter_config.json"), "utf8"));
    expect(adapterConfig).toMatchObject({ fan_in_fan_out: true, target_modules: ["c_attn", "c_fc", "c_proj"] });
    slimtune(["finetune", "--method", "peqa", "--model", q4, ...train, "--out", path.join(dir, "peqa")]);
    for (const [base, adapter] of [[model, "lora"], [q4, "peqa"]] as const) {
      const ev = slimtune(["eval", "--model", base, "--adapter", path.join(dir, adapter), ...score]);
      expect(Number.isFinite(ev.perplexity), JSON.stringify(ev)).toBe(true);
      const gen = slimtune(["generate", "--model", base, "--adapter", path.join(dir, adapter), ...prompt]);
      expect((gen.ids as number[]).length).toBe(8);
    }
  }, 600_000);

  it("both exports, an f32 GGUF read back, and pruning refused", () => {
    const loraGguf = path.join(dir, "lora.gguf");
    slimtune(["export", "--format", "gguf", "--model", model, "--adapter", path.join(dir, "lora"), "--out", loraGguf]);
    const q4Gguf = path.join(dir, "q4.gguf");
    slimtune(["export", "--format", "gguf", "--model", q4, "--dtype", "q4_0", "--out", q4Gguf]);
    expect(readGgufHeader(q4Gguf).metadata.get("general.architecture")?.value).toBe("gpt2");
    slimtune(["export", "--format", "onnx", "--model", q4, "--adapter", path.join(dir, "peqa"), "--out", path.join(dir, "onnx")]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "onnx", "config.json"), "utf8"))).toMatchObject({ model_type: "gpt2", n_embd: 64, n_head: 4, n_layer: 2 });

    // An f32 file read back generates what the float folder generates (same weights, same graph).
    const f32Gguf = path.join(dir, "f32.gguf");
    slimtune(["export", "--format", "gguf", "--model", model, "--out", f32Gguf]);
    expect(slimtune(["generate", "--model", f32Gguf, ...prompt]).ids).toEqual(slimtune(["generate", "--model", model, ...prompt]).ids);

    const pruned = run(["prune", "--model", model, "--data", WIKITEXT_VALID, "--ratio", "0.2", "--out", path.join(dir, "pruned")]);
    expect(pruned.status).toBe(2);
    expect(pruned.stderr).toMatch(/E_ARG.*gpt2/s);
  }, 600_000);
});
