// llama.cpp's preset mixes (llama-mix.ts) on a 16-layer model worked out by hand from
// llama_tensor_get_type's rules: gguf-presets.test.ts compares with llama.cpp itself, but only on
// 6-layer models (where "every third layer" and the first/last eighth barely differ) and at
// seconds per test; this runs in milliseconds, once per mutant (bench/mutation.mjs, export-gguf).

import { describe, expect, it } from "vitest";
import { GGUF_PRESETS, type GgufPreset, type MixTensor, PRESET_FILE_TYPE, fallbackType, llamaOrder, presetTypes } from "../../src/export/gguf/llama-mix.js";
import { GGML_TYPES } from "../../src/formats/gguf/ggml-types.js";

const LAYERS = 16;
const LEAVES = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/** A 16-layer model in llama.cpp's order, rows of 512 (whole k-quant blocks), untied head unless `tied`. */
function model(opts: { tied?: boolean; headRow?: number } = {}): MixTensor[] {
  const out: MixTensor[] = [{ name: "token_embd.weight", rowLength: 512 }];
  if (!opts.tied) out.push({ name: "output.weight", rowLength: opts.headRow ?? 512 });
  for (let i = 0; i < LAYERS; i++) for (const leaf of LEAVES) out.push({ name: `blk.${i}.${leaf}.weight`, rowLength: 512 });
  return out;
}

/** Type names per leaf, layer by layer: `{ attn_v: [16 names], … }`, plus the two table tensors. */
function byLeaf(types: Map<string, { name: string }>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const leaf of LEAVES) out[leaf] = Array.from({ length: LAYERS }, (_, i) => types.get(`blk.${i}.${leaf}.weight`)!.name);
  out.token_embd = types.get("token_embd.weight")!.name;
  if (types.has("output.weight")) out.output = types.get("output.weight")!.name;
  return out;
}

const all = (t: string) => Array<string>(LAYERS).fill(t);
/** `t` at the listed layers, `rest` elsewhere. */
const at = (layers: number[], t: string, rest: string) => Array.from({ length: LAYERS }, (_, i) => (layers.includes(i) ? t : rest));
// use_more_bits for 16 layers: i < 2, i >= 14, and (i − 2) % 3 == 2.
const MORE_BITS = [0, 1, 4, 7, 10, 13, 14, 15];

describe("presetTypes on 16 layers (gqa 4)", () => {
  const mix = (preset: GgufPreset, tensors = model()) => byLeaf(presetTypes(preset, tensors, LAYERS, 4));

  it("q4_k_m and q5_k_m: Q6_K for attn_v and ffn_down of the first and last eighth and every third layer between", () => {
    for (const [preset, base] of [["q4_k_m", "Q4_K"], ["q5_k_m", "Q5_K"]] as const) {
      expect(mix(preset)).toEqual({
        attn_q: all(base), attn_k: all(base), attn_output: all(base), ffn_gate: all(base), ffn_up: all(base),
        attn_v: at(MORE_BITS, "Q6_K", base), ffn_down: at(MORE_BITS, "Q6_K", base),
        token_embd: base, output: "Q6_K",
      });
    }
  });

  it("q4_k_s: Q5_K for the first four attn_v and the first eighth of ffn_down", () => {
    expect(mix("q4_k_s")).toMatchObject({ attn_v: at([0, 1, 2, 3], "Q5_K", "Q4_K"), ffn_down: at([0, 1], "Q5_K", "Q4_K"), attn_output: all("Q4_K"), attn_q: all("Q4_K") });
  });

  it("q3_k_m: attn_v Q5_K for two layers then Q4_K, ffn_down Q5_K for layers below 16/16, attn_output Q4_K", () => {
    expect(mix("q3_k_m")).toEqual({
      attn_q: all("Q3_K"), attn_k: all("Q3_K"), ffn_gate: all("Q3_K"), ffn_up: all("Q3_K"),
      attn_v: at([0, 1], "Q5_K", "Q4_K"), ffn_down: at([0], "Q5_K", "Q4_K"), attn_output: all("Q4_K"),
      token_embd: "Q3_K", output: "Q6_K",
    });
  });

  it("q3_k_l: Q5_K for attn_v, ffn_down and attn_output; q3_k_s, q5_k_s and q6_k: their base type but the head", () => {
    expect(mix("q3_k_l")).toMatchObject({ attn_v: all("Q5_K"), ffn_down: all("Q5_K"), attn_output: all("Q5_K"), attn_q: all("Q3_K"), token_embd: "Q3_K" });
    for (const [preset, base] of [["q3_k_s", "Q3_K"], ["q5_k_s", "Q5_K"], ["q6_k", "Q6_K"]] as const) {
      const m = mix(preset);
      for (const leaf of LEAVES) expect(m[leaf], `${preset} ${leaf}`).toEqual(all(base));
      expect([m.token_embd, m.output]).toEqual([base, "Q6_K"]);
    }
  });

  it("q2_k: attn_v Q4_K with 4 or more heads per KV head (else Q3_K), ffn_down and attn_output Q3_K", () => {
    expect(mix("q2_k")).toEqual({
      attn_q: all("Q2_K"), attn_k: all("Q2_K"), ffn_gate: all("Q2_K"), ffn_up: all("Q2_K"),
      attn_v: all("Q4_K"), ffn_down: all("Q3_K"), attn_output: all("Q3_K"),
      token_embd: "Q2_K", output: "Q6_K",
    });
    expect(byLeaf(presetTypes("q2_k", model(), LAYERS, 3)).attn_v).toEqual(all("Q3_K"));
  });

  it("a tied table takes the head's type; a head whose rows are not whole blocks is Q8_0", () => {
    expect(mix("q4_k_m", model({ tied: true })).token_embd).toBe("Q6_K");
    expect(mix("q4_k_m", model({ headRow: 288 })).output).toBe("Q8_0");
    expect(mix("q4_k_m", model({ headRow: 288 })).token_embd).toBe("Q4_K");
  });

  it("counts a fused attn_qkv as attn_v", () => {
    const fused: MixTensor[] = [];
    for (let i = 0; i < LAYERS; i++) fused.push({ name: `blk.${i}.attn_qkv.weight`, rowLength: 512 });
    const types = presetTypes("q4_k_m", fused, LAYERS, 1);
    expect(Array.from({ length: LAYERS }, (_, i) => types.get(`blk.${i}.attn_qkv.weight`)!.name)).toEqual(at(MORE_BITS, "Q6_K", "Q4_K"));
  });

  it("falls back per row length after choosing", () => {
    const types = presetTypes("q4_k_m", [{ name: "blk.0.attn_v.weight", rowLength: 96 }, { name: "blk.0.attn_q.weight", rowLength: 96 }, { name: "blk.0.attn_k.weight", rowLength: 48 }], 1, 1);
    expect(types.get("blk.0.attn_v.weight")!.name).toBe("Q8_0"); // Q6_K → Q8_0
    expect(types.get("blk.0.attn_q.weight")!.name).toBe("Q5_0"); // Q4_K → Q5_0
    expect(types.get("blk.0.attn_k.weight")!.name).toBe("F16"); // not even 32 divides 48
  });
});

describe("fallbackType", () => {
  const T = GGML_TYPES;
  it("keeps a type whose block divides the row, else llama.cpp's fallback, else F16", () => {
    expect(fallbackType(T.Q4_K, 512).name).toBe("Q4_K");
    expect(fallbackType(T.Q4_K, 256).name).toBe("Q4_K");
    expect([T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K].map((t) => fallbackType(t, 64).name)).toEqual(["Q4_0", "Q4_0", "Q5_0", "Q5_1", "Q8_0"]);
    expect([T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K].map((t) => fallbackType(t, 48).name)).toEqual(["F16", "F16", "F16", "F16", "F16"]);
    expect(fallbackType(T.Q8_0, 48).name).toBe("F16");
    expect(fallbackType(T.F32, 7).name).toBe("F32");
  });
});

describe("llamaOrder and the file types", () => {
  it("sorts by layer number, then by name, table tensors first", () => {
    const names = ["blk.10.attn_v.weight", "blk.2.ffn_down.weight", "output.weight", "blk.2.attn_v.weight", "blk.1.attn_v.weight", "token_embd.weight", "blk.2.attn_v.weight"];
    expect(llamaOrder(names.map((name) => ({ name, rowLength: 1 }))).map((t) => t.name)).toEqual([
      "output.weight", "token_embd.weight", "blk.1.attn_v.weight", "blk.2.attn_v.weight", "blk.2.attn_v.weight", "blk.2.ffn_down.weight", "blk.10.attn_v.weight",
    ]);
  });

  it("general.file_type is llama.cpp's LLAMA_FTYPE_MOSTLY_* of each preset", () => {
    expect(GGUF_PRESETS.map((p) => PRESET_FILE_TYPE[p])).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18]);
    expect([...GGUF_PRESETS]).toEqual(["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"]);
  });
});
