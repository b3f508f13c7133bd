// The transformers.js folder the page zips for download (WebSession.onnxZip, built by
// export/onnx/encode.ts without a file system) holds exactly the files `slimtune export --format
// onnx` (exportOnnx) writes for the same deployed model: LoRA merged into the float model (fp32),
// PEQA's scales merged into the 4-bit model (its own dtype, q4) — compared byte for byte, in Node.

import fs from "node:fs";
import path from "node:path";
import { unzipSync } from "fflate";
import { describe, expect, it } from "vitest";
import { deployedModel } from "../../src/export/deploy.js";
import { exportGguf } from "../../src/export/gguf/model.js";
import { exportOnnx } from "../../src/export/onnx/index.js";
import { loadBase } from "../../src/models/load.js";
import { ggufFromBytes } from "../../src/web/model-bytes.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import type { LoadedBase } from "../../src/models/load.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { WebSession, defaultWebTrainOptions } from "../../src/web/session.js";
import { REF_MODEL, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";
import { SPEC, refModelFiles } from "./ref-files.js";

const TEXT = fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 20_000);
const OPTS = { ...defaultWebTrainOptions, steps: 2, lr: 1e-2, batch: 2, seq: 32, heldOut: 0 };

/** Every file under `dir` by its path inside it ("onnx/model.onnx"). */
function folderFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    out.set(path.relative(dir, full).split(path.sep).join("/"), fs.readFileSync(full));
  }
  return out;
}

describe("the transformers.js folder the page downloads", () => {
  it("is exportOnnx's folder byte for byte: LoRA merged (fp32) and PEQA merged (q4, its own codes)", async () => {
    const web = WebSession.open(refModelFiles(), { threads: 2 });
    web.quantize(SPEC);
    for (const kind of ["lora", "peqa"] as const) {
      const trainer = web.startTraining(kind, TEXT, OPTS);
      for (let i = 0; i < OPTS.steps; i++) await trainer.step();
      web.keepAdapter(kind);
    }
    const dir = scratchDir("web-onnx-download");
    const float: LoadedBase = { kind: "float", model: LlamaModel.load(REF_MODEL) };
    const quantized: LoadedBase = { kind: "quantized", model: quantizeModel(float.model as LlamaModel, SPEC) };
    for (const [kind, base, dtype] of [["lora", float, "fp32"], ["peqa", quantized, undefined]] as const) {
      const adapterDir = path.join(dir, `${kind}-adapter`);
      fs.mkdirSync(adapterDir, { recursive: true });
      for (const [name, chunks] of web.adapterFiles(kind)) fs.writeFileSync(path.join(adapterDir, name), Buffer.concat(chunks));
      const nodeDir = path.join(dir, `${kind}-node`);
      const nodeReport = await exportOnnx(deployedModel(base, adapterDir).base, REF_MODEL, nodeDir, dtype ? { dtype } : {});

      const page = web.onnxZip(dtype, kind);
      expect(page.report.dtype, kind).toBe(kind === "lora" ? "fp32" : "q4");
      expect(page.report.bytes, kind).toBe(nodeReport.bytes);
      const unzipped = unzipSync(page.zip);
      const expected = folderFiles(nodeDir);
      expect(Object.keys(unzipped).sort(), kind).toEqual([...expected.keys()].sort());
      for (const [name, bytes] of expected) expect(Buffer.compare(Buffer.from(unzipped[name]!), bytes), `${kind}: ${name}`).toBe(0);
      // The folder carries the source's own tokenizer and generation files, not rebuilt ones.
      expect(Buffer.compare(Buffer.from(unzipped["generation_config.json"]!), fs.readFileSync(path.join(REF_MODEL, "generation_config.json")))).toBe(0);
    }
    // The same model gives the same archive (fixed entry times): a download can be checked by its hash.
    expect(Buffer.compare(Buffer.from(web.onnxZip("fp32", "lora").zip), Buffer.from(web.onnxZip("fp32", "lora").zip))).toBe(0);
    await web.release();
  }, 120_000);

  it("from a GGUF file: its tokenizer files rebuilt from the metadata as exportOnnx rebuilds them, the folder byte for byte", async () => {
    const dir = scratchDir("web-onnx-gguf");
    const file = path.join(dir, "ref-f32.gguf");
    exportGguf(loadBase(REF_MODEL), REF_MODEL, file, { dtype: "f32" });
    const web = WebSession.openGguf(ggufFromBytes(new Uint8Array(fs.readFileSync(file)), "ref-f32.gguf"), { threads: 2 });
    const unzipped = unzipSync(web.onnxZip(undefined).zip);
    const nodeDir = path.join(dir, "node");
    await exportOnnx(loadBase(file), file, nodeDir, {});
    const expected = folderFiles(nodeDir);
    expect(Object.keys(unzipped).sort()).toEqual([...expected.keys()].sort());
    expect(Object.keys(unzipped)).toContain("tokenizer_config.json");
    for (const [name, bytes] of expected) expect(Buffer.compare(Buffer.from(unzipped[name]!), bytes), name).toBe(0);
    await web.release();
  }, 120_000);
});
