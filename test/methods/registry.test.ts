// Method-owned options: each definition declares its flags once; the CLI derives finetune's flags
// from the list, parses the chosen method's values, and eval --adapter asks the definitions which
// adapter a folder holds.

import { spawnSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { methodArgs, parseMethodFlags } from "../../src/cli/method-flags.js";
import { defaultFineGatesOptions, fineGatesDefinition } from "../../src/methods/finegates/index.js";
import { floatFlag, intFlag, withDefaults } from "../../src/methods/flags.js";
import { defineMethod } from "../../src/methods/method.js";
import { findMethod, loadAdapter, methods } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { savePeqaAdapter } from "../../src/formats/peqa-adapter.js";
import { initialScales } from "../../src/methods/peqa/index.js";
import { expectSlimtuneError } from "../formats/helpers.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";
import { loraForDenseModel } from "../../src/methods/lora/index.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;

describe("method definitions and the CLI", () => {
  it("finetune gets one flag per declared option, named in kebab-case or by the flag's own name", () => {
    const args = methodArgs(methods);
    for (const name of ["rank", "alpha", "targets", "target-sparsity", "lambda", "gate-sigma", "gate-lr-scale", "lora-rank", "residual-gates", "harden"]) {
      expect(args[name], name).toBeDefined();
    }
    expect(args.alpha!.description).toMatch(/^lora, qlora, finegates: /);
    expect(args["gate-sigma"]).toMatchObject({ type: "string", default: "0.1" });
    expect(args.harden).toMatchObject({ type: "boolean", default: true });
    const help = spawnSync(process.execPath, [CLI, "finetune", "--help"], { encoding: "utf8" });
    expect(help.stdout).toContain("--gate-sigma");
  });

  it("a new method is one definition: its flags appear without touching the CLI", () => {
    const toy = defineMethod({
      name: "toy",
      summary: "a test method",
      needs: "float",
      defaultLr: 1e-3,
      flags: { toyDepth: intFlag(3, "toy: depth", { min: 1 }) },
      create: () => {
        throw new Error("not used");
      },
    });
    const args = methodArgs([...methods, toy]);
    expect(args["toy-depth"]).toMatchObject({ type: "string", default: "3" });
    expect(parseMethodFlags(toy, { "toy-depth": "7" })).toEqual({ toyDepth: 7 });
    expectSlimtuneError(() => parseMethodFlags(toy, { "toy-depth": "0" }), "E_ARG", "--toy-depth");
  });

  it("two methods that declare one CLI name differently are refused at start-up", () => {
    const clash = defineMethod({ name: "clash", summary: "", needs: "float", defaultLr: 1e-3, flags: { alpha: floatFlag(32, "other alpha") }, create: () => { throw new Error("not used"); } });
    expect(() => methodArgs([...methods, clash])).toThrow(/--alpha is declared by lora, qlora, finegates and clash/);
  });

  it("FineGates' defaults live in its flags", () => {
    expect(withDefaults(fineGatesDefinition.flags)).toEqual(defaultFineGatesOptions);
    expect(parseMethodFlags(fineGatesDefinition, { "gate-sigma": "0.3", harden: false, targets: "q_proj,v_proj" })).toMatchObject({ sigma: 0.3, hardenToTarget: false, targets: ["q_proj", "v_proj"], lambda: 0.01 });
    expectSlimtuneError(() => withDefaults(fineGatesDefinition.flags, { sigma: "x" as unknown as number }), "E_ARG", "--gate-sigma");
  });

  it("an unknown method names the known ones", () => {
    expectSlimtuneError(() => findMethod("magic"), "E_ARG", "magic", "full, lora, qlora, finegates, peqa");
  });
});

describe("adapter detection", () => {
  let model: LlamaModel;
  beforeAll(() => {
    model = LlamaModel.load(REF_MODEL);
  });

  it("a PEFT folder is LoRA on a float base and QLoRA on a quantized one; a PEQA folder is PEQA", () => {
    const root = scratchDir("detect");
    const lora = path.join(root, "lora");
    loraForDenseModel(model, { rank: 2, alpha: 4, seed: 0 }).save(lora);
    const qm = quantizeModel(model, { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });
    expect(loadAdapter({ kind: "float", model }, lora).definition.name).toBe("lora");
    expect(loadAdapter({ kind: "quantized", model: qm }, lora).definition.name).toBe("qlora");
    const peqa = path.join(root, "peqa");
    savePeqaAdapter(peqa, qm, initialScales(qm));
    expect(loadAdapter({ kind: "quantized", model: qm }, peqa).definition.name).toBe("peqa");
    expectSlimtuneError(() => loadAdapter({ kind: "float", model }, peqa), "E_ARG", "quantized model");
    expectSlimtuneError(() => loadAdapter({ kind: "float", model }, root), "E_CONFIG", "adapter_config.json", "peqa_adapter.json");
  });
});
