// `slimtune export --format hf` from the command line (dist/: build first): each bad input is a typed
// error with exit status 2 and no --out left behind (no adapter, a missing adapter folder or file, a
// LoRA adapter of another base by its shapes, a PEQA adapter of another base by its codes'
// fingerprint); a QLoRA merge needs a --dtype, and --dtype rtn --data reports the
// re-rounding with its KL in --json; --out is claimed as every output is (a foreign folder needs
// --overwrite, then is replaced whole, marked as slimtune's).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { OUTPUT_MARKER } from "../../src/core/output.js";
import { saveGptqFolder } from "../../src/formats/quantized/index.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { qloraMethod } from "../../src/methods/qlora/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { loadBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { REF_MODEL, WIKITEXT_TEST, scratchDir } from "../helpers/paths.js";
import { prunedRefModel } from "../helpers/pruned.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const slimtune = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

function expectRefused(args: string[], code: string, message: RegExp, out: string) {
  const r = slimtune(args);
  expect(r.stderr).toMatch(new RegExp(`error ${code}: `));
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
  expect(fs.existsSync(out), "nothing left in --out").toBe(false);
}

describe("slimtune export --format hf", () => {
  const dir = scratchDir("hf-cli");
  const q4 = path.join(dir, "q4");
  const q4other = path.join(dir, "q4-g32");
  const qlora = path.join(dir, "qlora");
  const peqa = path.join(dir, "peqa");
  beforeAll(() => {
    const model = LlamaModel.load(REF_MODEL);
    saveGptqFolder(q4, quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false }));
    saveGptqFolder(q4other, quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: 64, symmetric: true }));
    const qm = loadBase(q4).model as QuantizedModel;
    const lora = qloraMethod(qm, { rank: 4, alpha: 8, seed: 2, targetModules: ["v_proj"] });
    for (const [n, t] of lora.trainable) if (n.endsWith("lora_B.weight")) t.data.fill(0.01);
    lora.save(qlora);
    const p = peqaMethod(qm);
    for (const t of p.trainable.values()) t.data.forEach((v, i) => (t.data[i] = v * (1 + 0.03 * Math.cos(i))));
    p.save(peqa);
  });

  it("refuses no --adapter, a missing adapter folder or file, and a PEQA adapter for another base, leaving nothing", () => {
    const out = path.join(dir, "out");
    expectRefused(["export", "--format", "hf", "--model", REF_MODEL, "--out", out], "E_ARG", /--model is a Hugging Face folder already/, out);
    expectRefused(["export", "--format", "hf", "--model", q4, "--adapter", path.join(dir, "nope"), "--out", out], "E_NOT_FOUND", /adapter folder not found/, out);
    const broken = path.join(dir, "broken-lora");
    fs.cpSync(qlora, broken, { recursive: true });
    fs.rmSync(path.join(broken, "adapter_model.safetensors"));
    expectRefused(["export", "--format", "hf", "--model", q4, "--adapter", broken, "--dtype", "f32", "--out", out], "E_NOT_FOUND", /adapter_model\.safetensors/, out);
    const otherLora = path.join(dir, "lora-of-pruned");
    loraForDenseModel(prunedRefModel(), { rank: 4, alpha: 8, seed: 1, targetModules: ["mlp.up_proj"] }).save(otherLora);
    expectRefused(["export", "--format", "hf", "--model", REF_MODEL, "--adapter", otherLora, "--out", out], "E_SHAPE", /has shape \[352, 4\], the model needs \[704, 4\]; use the adapter with the base model/, out);
    expectRefused(["export", "--format", "hf", "--model", q4other, "--adapter", peqa, "--out", out], "E_CONFIG", /trained on another base \(fingerprint sha256:[0-9a-f]{12}…, this model's is sha256:/, out);
    expectRefused(["export", "--format", "hf", "--model", q4, "--adapter", qlora, "--out", out], "E_ARG", /merged into a quantized base \(rtn 4-bit g64 asymmetric\).*--dtype f32 or f16.*--dtype rtn/, out);
    expectRefused(["export", "--format", "hf", "--model", q4, "--adapter", qlora, "--dtype", "q4_0", "--out", out], "E_ARG", /--dtype "q4_0" is not one of f32, f16, rtn/, out);
  });

  it("--dtype rtn --data: the re-quantized folder, and the re-rounding with its KL in --json", () => {
    const out = path.join(dir, "qlora-rtn");
    const r = slimtune(["export", "--format", "hf", "--model", q4, "--adapter", qlora, "--dtype", "rtn", "--data", WIKITEXT_TEST, "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { holds: string; merged: string; files: string[]; changes: Array<{ kind: string; from: string; to: string; count: number; kl: number }>; total_kl: number; kl_tokens: number };
    expect(j).toMatchObject({ holds: "gptq", merged: "qlora" });
    expect(j.files).toEqual(expect.arrayContaining(["config.json", "model.safetensors", "quantize_config.json", "tokenizer.json", "generation_config.json"]));
    expect(j.changes).toEqual([expect.objectContaining({ kind: "re-rounded", from: "float (qlora merged)", to: "rtn 4-bit g64 asymmetric", count: 42 })]);
    expect(j.changes[0]!.kl).toBeGreaterThan(0);
    expect(j.total_kl).toBeGreaterThan(0);
    expect(j.kl_tokens).toBe(512);
    expect(fs.existsSync(path.join(out, OUTPUT_MARKER))).toBe(true);
    expect(loadBase(out).kind).toBe("quantized");
  });

  it("PEQA: the text report names the float16 scales; a foreign --out needs --overwrite and is then replaced whole", () => {
    const out = path.join(dir, "foreign");
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, "notes.txt"), "mine");
    const refused = slimtune(["export", "--format", "hf", "--model", q4, "--adapter", peqa, "--out", out]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/E_ARG: .*holds files slimtune did not write .*--overwrite/);
    expect(fs.readdirSync(out)).toEqual(["notes.txt"]);
    const r = slimtune(["export", "--format", "hf", "--model", q4, "--adapter", peqa, "--out", out, "--overwrite"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote PEQA adapter merged into the .* as a Hugging Face folder .*\(gptq, /);
    expect(r.stdout).toMatch(/codes kept, scales rounded to f16 .* → GPTQ scales F16: layers 0–5 .*\(42 tensors\)/);
    expect(fs.existsSync(path.join(out, "notes.txt"))).toBe(false);
    expect(fs.existsSync(path.join(out, OUTPUT_MARKER))).toBe(true);
  });
});
