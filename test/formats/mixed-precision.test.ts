// A mixed-precision model built through the library: 2 bits in the MLPs of the middle layers, 8 in
// the first and last layers, 4 elsewhere. It saves as a GPTQ folder with GPTQModel's per-module
// `dynamic` overrides, loads back layer for layer, evaluates, and its size is the sum of its layers'.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { layerIndexOf } from "../../src/arch/llama/names.js";
import { GraphCache } from "../../src/engine/index.js";
import { klToReference } from "../../src/eval/kl.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadQuantizedFolder, saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { matchDynamic, parseDynamic } from "../../src/formats/quantized/gptq-dynamic.js";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { scoringFor } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { sizeReport } from "../../src/quant/size.js";
import { type QuantSpec, gridLayer } from "../../src/quant/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const spec = (bits: QuantSpec["bits"], groupSize: QuantSpec["groupSize"] = "channel"): QuantSpec => ({ scheme: "rtn", bits, groupSize, symmetric: false });
const plan = (p: string): QuantSpec => {
  const layer = layerIndexOf(p)!;
  if (layer === 0 || layer === 5) return spec(8, 64);
  if (p.includes(".mlp.")) return spec(2);
  return spec(4);
};
const tokens = Int32Array.from({ length: 1500 }, (_, i) => (i * 7919 + 13) % 4000);

describe("a mixed-precision GPTQ model", () => {
  let model: LlamaModel;
  const dir = path.join(scratchDir("mixed"), "q");
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  it("round-trips every layer's spec, codes and zeros through `dynamic`", () => {
    const qm = quantizeModel(model, plan);
    expect(qm.spec).toEqual(spec(4)); // the most common spec is the default written at top level
    saveQuantizedFolder(dir, qm);
    const quant = JSON.parse(fs.readFileSync(path.join(dir, "quantize_config.json"), "utf8"));
    expect(quant).toMatchObject({ bits: 4, group_size: -1 });
    const dynamic = parseDynamic(quant.dynamic, "quantize_config.json");
    // vLLM matches fused names: the pattern of a whole q/k/v set also names qkv_proj.
    expect(matchDynamic(dynamic, "model.layers.0.self_attn.qkv_proj")?.rule).toEqual({ skip: false, overrides: { bits: 8, group_size: 64 } });
    expect(matchDynamic(dynamic, "model.layers.2.mlp.gate_up_proj")?.rule).toEqual({ skip: false, overrides: { bits: 2 } });
    expect(matchDynamic(dynamic, "model.layers.2.self_attn.q_proj")).toBeNull();
    const loaded = loadQuantizedFolder(dir);
    for (const [p, layer] of qm.linears) {
      const q = gridLayer(layer, p, "test");
      const l = gridLayer(loaded.linears.get(p)!, p, "test");
      expect(l.spec, p).toEqual(q.spec);
      expect(Buffer.from(l.codes).equals(Buffer.from(q.codes)), p).toBe(true);
      expect(Buffer.from(l.zeros!).equals(Buffer.from(q.zeros!)), p).toBe(true);
    }
    const st = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    expect(st.entries.get("model.layers.2.mlp.up_proj.qweight")!.shape).toEqual([(256 * 2) / 32, 704]);
    expect(st.entries.get("model.layers.0.mlp.up_proj.scales")!.shape).toEqual([4, 704]);
  });

  it("reports a size equal to the sum of its layers, each at its own bits", () => {
    const r = sizeReport(quantizeModel(model, plan));
    expect(r.mixed).toBe(true);
    expect(r.layers.reduce((s, l) => s + l.bytes, 0) + r.denseBytes).toBe(r.totalBytes);
    const up = (i: number) => r.layers.find((l) => l.path === `model.layers.${i}.mlp.up_proj`)!;
    expect(up(2).bytes).toBe((704 * 256 * 2) / 8 + 704 * 2 + (704 * 2) / 8 + 4 * 256); // codes, F16 scales, 2-bit zeros, g_idx
    expect(up(0).bitsPerWeight).toBeGreaterThan(8);
    expect(up(2).bitsPerWeight).toBeLessThan(2.1);
    // The tensors on disk hold exactly the bytes the report counts (the file adds only its header).
    const file = fs.statSync(path.join(dir, "model.safetensors")).size;
    const st = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    const tensorBytes = [...st.entries.values()].reduce((s, e) => s + e.end - e.begin, 0);
    expect(tensorBytes).toBe(r.totalBytes);
    expect(file).toBeGreaterThan(r.totalBytes);
  });

  it("evaluates after reloading, between its uniform 2-bit and 8-bit neighbours in KL", async () => {
    const loaded = loadQuantizedFolder(dir);
    const float = scoringFor({ kind: "float", model });
    const kl = async (qm: ReturnType<typeof loadQuantizedFolder>) =>
      (await klToReference(scoringFor({ kind: "quantized", model: qm }), float, { model: new GraphCache(), reference: new GraphCache() }, tokens, { ctx: 128 })).meanKl;
    const mixed = await kl(loaded);
    expect(mixed).toBeGreaterThan(await kl(quantizeModel(model, spec(8, 64))));
    expect(mixed).toBeLessThan(await kl(quantizeModel(model, spec(2))));
    const ppl = await perplexity(scoringFor({ kind: "quantized", model: loaded }), new GraphCache(), tokens, { ctx: 128 });
    expect(Number.isFinite(ppl.perplexity)).toBe(true);
  });

  it("keeps a layer in float when the plan says so, written under a \"-:\" pattern", async () => {
    const qm = quantizeModel(model, (p) => (p === "model.layers.3.mlp.down_proj" ? null : spec(4)));
    expect(qm.linears.has("model.layers.3.mlp.down_proj")).toBe(false);
    expect(qm.dense.has("model.layers.3.mlp.down_proj.weight")).toBe(true);
    const out = path.join(scratchDir("mixed-float"), "q");
    saveQuantizedFolder(out, qm);
    const quant = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).quantization_config;
    expect(Object.keys(quant.dynamic)).toEqual(["-:model\\.layers\\.3\\.mlp\\.(?:down_proj)$"]);
    const loaded = loadQuantizedFolder(out);
    expect(loaded.linears.has("model.layers.3.mlp.down_proj")).toBe(false);
    expect(loaded.dense.get("model.layers.3.mlp.down_proj.weight")!.data).toEqual(model.weights.get("model.layers.3.mlp.down_proj.weight")!.data);
    const direct = await perplexity(scoringFor({ kind: "quantized", model: qm }), new GraphCache(), tokens, { ctx: 128 });
    const reloaded = await perplexity(scoringFor({ kind: "quantized", model: loaded }), new GraphCache(), tokens, { ctx: 128 });
    expect(Math.abs(direct.perplexity - reloaded.perplexity) / direct.perplexity).toBeLessThan(1e-3);
  });
});
