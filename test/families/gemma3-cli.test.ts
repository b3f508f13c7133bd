// The CLI on a tiny Gemma 3 (gemma3_text) model, end to end: quantize (4-bit RTN), finetune with LoRA (float base)
// and PEQA (the 4-bit model), eval and generate with each adapter, export to GGUF (float + GGUF
// LoRA, and q4_0 keeping the codes) and to ONNX (PEQA merged), and generate from an f32 GGUF file read back.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufHeader } from "../../src/formats/gguf/reader.js";
import { WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";
import { GEMMA3_TINY_CONFIG, saveRandomModel } from "../helpers/tiny-families.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;

function slimtune(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [CLI, ...args, "--json"], { encoding: "utf8" });
  expect(r.status, `slimtune ${args.join(" ")}\n${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

describe("gemma3 through the CLI", () => {
  const dir = scratchDir("gemma3-cli");
  const model = path.join(dir, "model");
  const q4 = path.join(dir, "q4");
  const train = ["--data", WIKITEXT_VALID, "--steps", "3", "--batch", "2", "--seq", "32", "--eval-tokens", "512"];
  const score = ["--data", WIKITEXT_TEST, "--max-tokens", "1024", "--ctx", "64"];
  const prompt = ["--prompt", " The tower is", "--max-new-tokens", "8", "--ignore-eos"];

  it("quantize, finetune (LoRA, PEQA), eval, generate and both exports work", () => {
    saveRandomModel(GEMMA3_TINY_CONFIG, 3, model);
    slimtune(["quantize", "--model", model, "--bits", "4", "--group-size", "32", "--sym", "--out", q4]);
    expect(JSON.parse(fs.readFileSync(path.join(q4, "config.json"), "utf8")).model_type).toBe("gemma3_text");

    slimtune(["finetune", "--method", "lora", "--model", model, ...train, "--out", path.join(dir, "lora")]);
    slimtune(["finetune", "--method", "peqa", "--model", q4, ...train, "--out", path.join(dir, "peqa")]);
    for (const [base, adapter] of [[model, "lora"], [q4, "peqa"]] as const) {
      const ev = slimtune(["eval", "--model", base, "--adapter", path.join(dir, adapter), ...score]);
      expect(Number.isFinite(ev.perplexity), JSON.stringify(ev)).toBe(true);
      const gen = slimtune(["generate", "--model", base, "--adapter", path.join(dir, adapter), ...prompt]);
      expect((gen.ids as number[]).length).toBe(8);
    }

    const loraGguf = path.join(dir, "lora.gguf");
    slimtune(["export", "--format", "gguf", "--model", model, "--adapter", path.join(dir, "lora"), "--out", loraGguf]);
    const q4Gguf = path.join(dir, "q4.gguf");
    slimtune(["export", "--format", "gguf", "--model", q4, "--dtype", "q4_0", "--out", q4Gguf]);
    const q4Header = readGgufHeader(q4Gguf);
    expect(q4Header.metadata.get("general.architecture")?.value).toBe("gemma3");
    // The tied embedding (most of a 262 k-vocabulary Gemma 3) is quantized by --dtype as well.
    expect(q4Header.tensors.get("token_embd.weight")!.type.name).toBe("Q4_0");
    slimtune(["export", "--format", "onnx", "--model", q4, "--adapter", path.join(dir, "peqa"), "--out", path.join(dir, "onnx")]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "onnx", "config.json"), "utf8")).model_type).toBe("gemma3_text");

    // An f32 file read back generates what the float folder generates (same weights, same graph).
    const f32Gguf = path.join(dir, "f32.gguf");
    slimtune(["export", "--format", "gguf", "--model", model, "--out", f32Gguf]);
    const fromGguf = slimtune(["generate", "--model", f32Gguf, ...prompt]);
    const fromFolder = slimtune(["generate", "--model", model, ...prompt]);
    expect(fromGguf.ids).toEqual(fromFolder.ids);
  }, 600_000);
});
