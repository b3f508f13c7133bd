// The page's memory decision, in Node: the estimate counts the parameters the page's methods really
// train, the limit is WASM's 4 GiB or the smaller memory a browser reports, and a model over it is
// refused with its size and the limit named. Prints the table docs/benchmarks.md §4 quotes.

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
  trainableParameters,
} from "../../src/web/memory-limit.js";
import { REF_MODEL, SHARED } from "../helpers/paths.js";
import { SPEC } from "./ref-files.js";

const RUN = { batch: 4, seq: 64, groupSize: SPEC.groupSize, loraRank: 8 };
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
    expect((error as SlimtuneError).message).toMatch(/1236 M parameters.*the limit is 4\.00 GiB, WebAssembly's 4 GiB memory cap.*PEQA: needs at least [\d.]+ GiB.*does not fit.*LoRA: needs at least/);
  });

  it("refuses only the method over the limit when one fits and the other does not", () => {
    const config = configOf("smollm2-135m-shape");
    const [peqa, lora] = pageMemoryPlan(config, RUN, pageMemoryLimit());
    expect(lora!.estimate.totalBytes).toBeGreaterThan(peqa!.estimate.totalBytes); // LoRA's factors add weights and optimizer state
    const between = { bytes: (peqa!.estimate.totalBytes + lora!.estimate.totalBytes) / 2, source: "a test limit" };
    expect(assertFitsInPage(config, RUN, between, "peqa").find((f) => f.method === "lora")!.fits).toBe(false);
    expect(() => assertFitsInPage(config, RUN, between, "lora")).toThrow(/too large to train in this page.*the limit is [\d.]+ GiB, a test limit/);
    expect(() => assertFitsInPage(config, RUN, { bytes: peqa!.estimate.totalBytes - 1, source: "a test limit" })).toThrow(/PEQA: needs at least/);
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
