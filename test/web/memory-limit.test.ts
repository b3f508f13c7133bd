// The page's memory decision, in Node: the estimate counts the parameters the page's methods really
// train, the WASM heap predicted from it matches what bench/web-limits.mjs measured in Chromium
// (bench/results/web-limits.json: the models that trained are let through, the ones that failed
// are refused), the limit is WASM's 4 GiB or the smaller memory a browser reports, and a model over
// it is refused with its size and the limit named. Prints the table docs/benchmarks.md §4 quotes.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseLlamaConfig } from "../../src/formats/hf-config.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";
import { peqaMethod } from "../../src/methods/peqa/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { SlimtuneError } from "../../src/core/errors.js";
import {
  WASM_MEMORY_CAP_BYTES,
  assertFitsInPage,
  describeFit,
  pageMemoryLimit,
  pageMemoryPlan,
  parameterCount,
  predictedHeapBytes,
  trainableParameters,
} from "../../src/web/memory-limit.js";
import { REF_MODEL, SHARED } from "../helpers/paths.js";
import { SPEC } from "./ref-files.js";

const RUN = { batch: 4, seq: 64, groupSize: SPEC.groupSize, loraRank: 8 };
const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);

/** What bench/web-limits.mjs writes (the fields read here). */
interface LimitsRun {
  flags: { batch: number; seq: number };
  rows: { model: string; methods: ("peqa" | "lora")[]; outcome: string; stages: { stage: string; outcome: string; wasmHeapGiB?: number }[] }[];
}
const configOf = (name: string) => parseLlamaConfig(JSON.parse(fs.readFileSync(path.join(SHARED, "models", name, "config.json"), "utf8")), "config.json");
const sum = (m: LlamaModel | ReturnType<typeof peqaMethod>["trainable"]) =>
  m instanceof LlamaModel ? m.parameterCount : [...m.values()].reduce((n, p) => n + p.data.length, 0);

describe("the page's memory limit", () => {
  it("counts the parameters the page's model and methods really hold", () => {
    const model = LlamaModel.load(REF_MODEL);
    expect(parameterCount(model.config)).toBe(sum(model));
    expect(trainableParameters(model.config, "peqa", RUN)).toBe(sum(peqaMethod(quantizeModel(model, SPEC)).trainable));
    expect(trainableParameters(model.config, "lora", RUN)).toBe(sum(loraForDenseModel(model, { rank: 8, alpha: 16, seed: 0 }, null).trainable));
  });

  it("is calibrated to the page measured in Chromium: what trained fits (heap within 10 % of the measured one), what failed is refused", () => {
    const measured = JSON.parse(fs.readFileSync(path.join(ROOT, "bench", "results", "web-limits.json"), "utf8")) as LimitsRun;
    const run = { batch: measured.flags.batch, seq: measured.flags.seq, groupSize: SPEC.groupSize, loraRank: 8 };
    const limit = pageMemoryLimit();
    const rows = measured.rows.filter((r) => r.methods.length === 1);
    expect(rows.map((r) => `${r.model} ${r.methods[0]}`)).toEqual(["ref-llama-5m peqa", "ref-llama-5m lora", "smollm2-135m-shape peqa", "smollm2-135m-shape lora", "qwen2.5-0.5b-shape peqa", "qwen2.5-0.5b-shape lora"]);
    for (const row of rows) {
      const method = row.methods[0]!;
      const fit = pageMemoryPlan(configOf(row.model), run, limit).find((f) => f.method === method)!;
      const step = row.stages.find((s) => s.stage === `${method} step`);
      const trained = step?.outcome === "done";
      const label = `${row.model} ${method}: ${row.outcome}, predicted ${(fit.heapBytes / 2 ** 30).toFixed(2)} GiB`;
      console.log(`${label}, measured ${step?.wasmHeapGiB ?? "—"} GiB`);
      expect(fit.fits, label).toBe(trained);
      if (trained) expect(Math.abs(fit.heapBytes / 2 ** 30 - step!.wasmHeapGiB!) / step!.wasmHeapGiB!, label).toBeLessThanOrEqual(0.1);
      expect(predictedHeapBytes(method, fit.estimate)).toBe(fit.heapBytes);
    }
  });

  it("is WASM's 4 GiB unless the browser reports less memory", () => {
    expect(pageMemoryLimit().bytes).toBe(WASM_MEMORY_CAP_BYTES);
    expect(pageMemoryLimit({ deviceMemoryGiB: 8 }).bytes).toBe(WASM_MEMORY_CAP_BYTES);
    const two = pageMemoryLimit({ deviceMemoryGiB: 2 });
    expect(two.bytes).toBe(2 * 2 ** 30);
    expect(two.source).toMatch(/2 GiB .*navigator\.deviceMemory/);
  });

  it("lets ref-llama-5m train both ways and refuses the 1B shape, naming its size and the limit", () => {
    const limit = pageMemoryLimit();
    expect(assertFitsInPage(configOf("ref-llama-5m"), RUN, limit).every((f) => f.fits)).toBe(true);
    const big = configOf("llama-3.2-1b-shape");
    let error: unknown;
    try {
      assertFitsInPage(big, RUN, limit);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SlimtuneError);
    expect((error as SlimtuneError).code).toBe("E_MEMORY");
    expect((error as SlimtuneError).message).toMatch(/1236 M parameters.*the limit is 4\.00 GiB, WebAssembly's 4 GiB memory cap.*PEQA: needs about [\d.]+ GiB of WASM memory \(1\.505× as measured in Chromium, of a [\d.]+ GiB estimate.*does not fit.*LoRA: needs about [\d.]+ GiB/);
  });

  it("refuses only the method over the limit when one fits and the other does not", () => {
    const config = configOf("smollm2-135m-shape");
    const [peqa, lora] = pageMemoryPlan(config, RUN, pageMemoryLimit());
    expect(lora!.heapBytes).toBeGreaterThan(peqa!.heapBytes); // LoRA's float base is copied into the heap while its session is created
    const between = { bytes: (peqa!.heapBytes + lora!.heapBytes) / 2, source: "a test limit" };
    expect(assertFitsInPage(config, RUN, between, "peqa").find((f) => f.method === "lora")!.fits).toBe(false);
    expect(() => assertFitsInPage(config, RUN, between, "lora")).toThrow(/too large to train in this page.*the limit is [\d.]+ GiB, a test limit/);
    expect(() => assertFitsInPage(config, RUN, { bytes: peqa!.heapBytes - 1, source: "a test limit" })).toThrow(/PEQA: needs about/);
  });

  it("prints which shapes fit with each method (docs/benchmarks.md §4)", () => {
    const limit = pageMemoryLimit();
    for (const name of ["ref-llama-5m", "smollm2-135m-shape", "qwen2.5-0.5b-shape", "llama-3.2-1b-shape"]) {
      const config = configOf(name);
      for (const run of [RUN, { ...RUN, batch: 8, seq: 256 }]) {
        const plan = pageMemoryPlan(config, run, limit);
        console.log(`${name} (${(parameterCount(config) / 1e6).toFixed(1)} M) batch ${run.batch} × seq ${run.seq}: ${plan.map((f) => describeFit(f, limit)).join(" | ")}`);
        expect(plan).toHaveLength(2);
      }
    }
  });
});
