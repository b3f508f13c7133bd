// GPTQ `dynamic` overrides (formats.md §1.9) and the quant_method dispatch, on hand-written
// values: fast enough to run once per mutant (bench/mutation.mjs, formats-quantized), where the
// folder round trips in gptq-folder.test.ts take seconds each. Everything is computed inside the
// tests: Stryker switches a mutant on after vitest has collected the file, so a value computed in a
// describe body never sees it (and a throw there is not counted as a kill).

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type DynamicRule, buildDynamic, matchDynamic, parseDynamic } from "../../src/formats/quantized/gptq-dynamic.js";
import { loadQuantizedFolder, saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid } from "../../src/quant/linalg/kmeans.js";
import { quantizeReallmModel } from "../../src/quant/reallm.js";
import { tinyModel } from "../quant/helpers.js";
import { expectSlimtuneError, refModelDir, tempDir } from "./helpers.js";

const FILE = "some/config.json";

describe("parseDynamic", () => {
  it("reads absent or null as no overrides, and refuses anything but an object", () => {
    expect(parseDynamic(undefined, FILE)).toEqual([]);
    expect(parseDynamic(null, FILE)).toEqual([]);
    const err = expectSlimtuneError(() => parseDynamic([{ bits: 4 }], FILE), "E_CONFIG", '"dynamic" is [{"bits":4}]', "expected an object mapping module regexes");
    expect(err.file).toBe(FILE);
    expectSlimtuneError(() => parseDynamic("x", FILE), "E_CONFIG", '"dynamic" is "x"');
  });

  it("splits the -: and +: prefixes off and keeps only the overrides given, in order", () => {
    const entries = parseDynamic(
      {
        "-:.*down_proj": {},
        "+:model\\.layers\\.0\\..*": { bits: 8, group_size: 64, other: "ignored" },
        "model\\.layers\\.1\\.mlp": { sym: false, desc_act: true },
      },
      FILE,
    );
    expect(entries).toStrictEqual([
      { pattern: ".*down_proj", rule: { skip: true } },
      { pattern: "model\\.layers\\.0\\..*", rule: { skip: false, overrides: { bits: 8, group_size: 64 } } },
      { pattern: "model\\.layers\\.1\\.mlp", rule: { skip: false, overrides: { sym: false, desc_act: true } } },
    ]);
  });

  it("names the pattern and the expected value of each field it refuses", () => {
    expectSlimtuneError(() => parseDynamic({ "+:(": {} }, FILE), "E_CONFIG", 'pattern "+:("', "is not a regular expression");
    const prefix = 'quantization_config: "dynamic" "+:q": ';
    expectSlimtuneError(() => parseDynamic({ "+:q": { bits: "4" } }, FILE), "E_CONFIG", prefix, "2, 3, 4 or 8", "re-quantize");
    expectSlimtuneError(() => parseDynamic({ "+:q": { group_size: 1.5 } }, FILE), "E_CONFIG", prefix, "-1 or a group size");
    expectSlimtuneError(() => parseDynamic({ "+:q": { sym: 1 } }, FILE), "E_CONFIG", prefix, "true or false");
    expectSlimtuneError(() => parseDynamic({ "+:q": { desc_act: "yes" } }, FILE), "E_CONFIG", prefix, "true or false");
    // Only a leading +: or -: is a prefix; "+:" later in a key is part of the regex.
    expect(parseDynamic({ "q+:z": { bits: 8 } }, FILE)).toStrictEqual([{ pattern: "q+:z", rule: { skip: false, overrides: { bits: 8 } } }]);
    // A skipped module's value is never read.
    expect(parseDynamic({ "-:q": { bits: "not read" } }, FILE)).toStrictEqual([{ pattern: "q", rule: { skip: true } }]);
  });
});

describe("matchDynamic", () => {
  const parsed = () => parseDynamic({ "-:.*\\.mlp\\.down_proj": {}, "+:model\\.layers\\.1": { bits: 2 }, "+:model\\.layers\\.1\\.self_attn|lm": { bits: 8 } }, FILE);

  it("takes the first pattern that matches at the start of the name, like Python's re.match", () => {
    const entries = parsed();
    expect(matchDynamic(entries, "model.layers.1.mlp.down_proj")?.rule).toEqual({ skip: true });
    // A prefix match is a match (re.match does not need the whole name): layer 10 matches "layers\.1".
    expect(matchDynamic(entries, "model.layers.10.self_attn.q_proj")?.rule).toEqual({ skip: false, overrides: { bits: 2 } });
    expect(matchDynamic(entries, "model.layers.2.self_attn.q_proj")).toBeNull();
  });

  it("anchors the whole alternation, not just its first branch", () => {
    // ^(?:a|lm): "xlm" does not match; ^a|lm would.
    const entries = parsed();
    expect(matchDynamic(entries, "xlm_head")).toBeNull();
    expect(matchDynamic(entries, "lm_head")?.rule).toEqual({ skip: false, overrides: { bits: 8 } });
  });
});

describe("buildDynamic", () => {
  const q8: DynamicRule = { skip: false, overrides: { bits: 8 } };
  const rules = new Map<string, DynamicRule>([
    ["model.layers.0.self_attn.q_proj", q8],
    ["model.layers.0.self_attn.k_proj", q8],
    ["model.layers.0.self_attn.v_proj", q8],
    ["model.layers.0.mlp.down_proj", { skip: true }],
    ["model.layers.1.mlp.gate_proj", { skip: false, overrides: { bits: 2 } }],
    ["model.layers.1.mlp.up_proj", { skip: false, overrides: { bits: 3 } }],
    ["model.layers.2.mlp.gate_proj", { skip: false, overrides: { group_size: 32 } }],
    ["model.layers.2.mlp.up_proj", { skip: false, overrides: { group_size: 32 } }],
    ["model.layers.3.self_attn.q_proj", q8],
    ["model.layers.3.self_attn.k_proj", q8],
  ]);

  it("is null without rules", () => {
    expect(buildDynamic(new Map())).toBeNull();
  });

  it("writes one escaped pattern per parent and rule, naming vLLM's fused module when all its parts share the rule", () => {
    expect(buildDynamic(rules)).toStrictEqual({
      "+:model\\.layers\\.0\\.self_attn\\.(?:q_proj|k_proj|v_proj|qkv_proj)$": { bits: 8 },
      "-:model\\.layers\\.0\\.mlp\\.(?:down_proj)$": {},
      "+:model\\.layers\\.1\\.mlp\\.(?:gate_proj)$": { bits: 2 },
      "+:model\\.layers\\.1\\.mlp\\.(?:up_proj)$": { bits: 3 },
      "+:model\\.layers\\.2\\.mlp\\.(?:gate_proj|up_proj|gate_up_proj)$": { group_size: 32 },
      "+:model\\.layers\\.3\\.self_attn\\.(?:q_proj|k_proj)$": { bits: 8 },
    });
  });

  it("reads back as the same rule for every module, and matches no other", () => {
    const entries = parseDynamic(buildDynamic(rules), FILE);
    for (const [module, rule] of rules) expect(matchDynamic(entries, module)?.rule, module).toEqual(rule);
    expect(matchDynamic(entries, "model.layers.0.self_attn.qkv_proj")?.rule).toEqual(q8);
    expect(matchDynamic(entries, "model.layers.0.self_attn.o_proj")).toBeNull();
    // The dots are escaped and the name ends at $: neither "modelXlayers" nor a longer leaf matches.
    expect(matchDynamic(entries, "modelXlayers.0.mlp.down_proj")).toBeNull();
    expect(matchDynamic(entries, "model.layers.0.mlp.down_proj_extra")).toBeNull();
    expect(matchDynamic(entries, "model.layers.10.mlp.down_proj")).toBeNull();
  });

  it("copies each rule's overrides", () => {
    const rule: DynamicRule = { skip: false, overrides: { bits: 4 } };
    const out = buildDynamic(new Map([["model.layers.0.mlp.up_proj", rule]]))!;
    out["+:model\\.layers\\.0\\.mlp\\.(?:up_proj)$"]!.bits = 2;
    expect(rule.overrides.bits).toBe(4);
  });
});

describe("loadQuantizedFolder", () => {
  const dir = tempDir("quantized-mutants");

  it("names the quant_methods it reads when the folder's is another", () => {
    const folder = path.join(dir, "awq");
    fs.mkdirSync(folder);
    const config = JSON.parse(fs.readFileSync(path.join(refModelDir, "config.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(folder, "config.json"), JSON.stringify({ ...config, quantization_config: { quant_method: "awq", bits: 4 } }));
    const err = expectSlimtuneError(() => loadQuantizedFolder(folder), "E_CONFIG", '"quant_method" is "awq"', 'slimtune reads "gptq" and "slimtune-nf4" and "slimtune-reallm" folders');
    expect(err.file).toBe(path.join(folder, "config.json"));
    fs.writeFileSync(path.join(folder, "config.json"), JSON.stringify({ ...config, quantization_config: { quant_method: 4, bits: 4 } }));
    expectSlimtuneError(() => loadQuantizedFolder(folder), "E_CONFIG", '"quant_method" is 4;');
  });

  it("saves a ReALLM model in its own layout, with the budget it was made under", async () => {
    const gemm = new HostGemm({ threads: 1 });
    const nearest = new NearestCentroid({ threads: 1 });
    try {
      const { qm } = await quantizeReallmModel(tinyModel("llama", 5), { budget: 4, rank: 2, seed: 0, gemm, nearest, blockSize: 32, maxIterations: 1 });
      const out = path.join(dir, "reallm");
      saveQuantizedFolder(out, qm);
      const quant = (JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as { quantization_config: Record<string, unknown> }).quantization_config;
      expect([quant.quant_method, quant.budget_bits_per_weight]).toEqual(["slimtune-reallm", 4]);
      expect(loadQuantizedFolder(out).method).toEqual({ name: "reallm", config: { budget_bits_per_weight: 4 } });
    } finally {
      await gemm.release();
      await nearest.release();
    }
  });
});
