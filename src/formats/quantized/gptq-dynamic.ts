// Per-module overrides of a GPTQ checkpoint (formats.md §1.9): GPTQModel's and vLLM's `dynamic`
// maps a regex to the settings of the modules it matches. The first pattern (in insertion order)
// that matches at the start of a module's name wins (Python's re.match); "-:" leaves the module
// unquantized, "+:" or no prefix overrides bits / group_size / sym / desc_act.
//
// vLLM matches against its fused names (`self_attn.qkv_proj`, `mlp.gate_up_proj`), so q/k/v (and
// gate/up) of a layer must share settings there; the writer names the fused module too whenever
// all its parts share an override, so such checkpoints load in vLLM as well as GPTQModel.

import { z } from "zod";
import { SlimtuneError, quote } from "../../core/errors.js";
import { parseFields, shownJson } from "../../core/json.js";

/** What a matching pattern says of a module: unquantized, or these settings over the defaults. */
export type DynamicRule = { skip: true } | { skip: false; overrides: { bits?: number; group_size?: number; sym?: boolean; desc_act?: boolean } };

export interface DynamicEntry {
  pattern: string;
  rule: DynamicRule;
}

const overrideShape = {
  bits: z.number().int().optional(),
  group_size: z.number().int().optional(),
  sym: z.boolean().optional(),
  desc_act: z.boolean().optional(),
};
const overrideExpected = {
  bits: "2, 3, 4 or 8",
  group_size: "-1 or a group size such as 32, 64, 128",
  sym: "true or false",
  desc_act: "true or false",
};

/** Parses `quantization_config.dynamic` (absent or null: no overrides). */
export function parseDynamic(value: unknown, file: string): DynamicEntry[] {
  if (value === undefined || value === null) return [];
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new SlimtuneError("E_CONFIG", `quantization_config: "dynamic" is ${shownJson(value)}; expected an object mapping module regexes to overrides`, file);
  }
  return Object.entries(value as Record<string, unknown>).map(([key, overrides]) => {
    const skip = key.startsWith("-:");
    const pattern = key.replace(/^[+-]:/, "");
    try {
      new RegExp(pattern);
    } catch (err) {
      throw new SlimtuneError("E_CONFIG", `quantization_config: "dynamic" pattern ${quote(key)} is not a regular expression slimtune can read (${(err as Error).message})`, file);
    }
    if (skip) return { pattern, rule: { skip: true } };
    const parsed = parseFields(overrides, overrideShape, overrideExpected, {
      file,
      prefix: `quantization_config: "dynamic" ${quote(key)}: `,
      fix: "fix the override or re-quantize",
    });
    const o: { bits?: number; group_size?: number; sym?: boolean; desc_act?: boolean } = {};
    if (parsed.bits !== undefined) o.bits = parsed.bits;
    if (parsed.group_size !== undefined) o.group_size = parsed.group_size;
    if (parsed.sym !== undefined) o.sym = parsed.sym;
    if (parsed.desc_act !== undefined) o.desc_act = parsed.desc_act;
    return { pattern, rule: { skip: false, overrides: o } };
  });
}

/** The entry whose pattern matches `module` first (anchored at the start, like Python's re.match), or null. */
export function matchDynamic(entries: readonly DynamicEntry[], module: string): DynamicEntry | null {
  for (const e of entries) if (new RegExp(`^(?:${e.pattern})`).test(module)) return e;
  return null;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Fused module names vLLM matches: all of q/k/v share one, gate/up another. */
const FUSED: Array<{ parts: string[]; name: string }> = [
  { parts: ["q_proj", "k_proj", "v_proj"], name: "qkv_proj" },
  { parts: ["gate_proj", "up_proj"], name: "gate_up_proj" },
];

/**
 * Builds `dynamic` from per-module rules (modules absent from `rules` take the defaults). Modules
 * of one parent (e.g. "model.layers.3.self_attn") with the same rule share one pattern.
 */
export function buildDynamic(rules: ReadonlyMap<string, DynamicRule>): Record<string, Record<string, unknown>> | null {
  if (rules.size === 0) return null;
  const groups = new Map<string, { parent: string; leaves: string[]; rule: DynamicRule }>();
  for (const [module, rule] of rules) {
    const dot = module.lastIndexOf(".");
    const parent = module.slice(0, dot);
    const key = `${parent}|${JSON.stringify(rule)}`;
    const g = groups.get(key) ?? { parent, leaves: [], rule };
    g.leaves.push(module.slice(dot + 1));
    groups.set(key, g);
  }
  const out: Record<string, Record<string, unknown>> = {};
  for (const { parent, leaves, rule } of groups.values()) {
    const names = [...leaves];
    for (const f of FUSED) if (f.parts.every((p) => leaves.includes(p))) names.push(f.name);
    const pattern = `${escape(parent)}\\.(?:${names.join("|")})$`;
    out[rule.skip ? `-:${pattern}` : `+:${pattern}`] = rule.skip ? {} : { ...rule.overrides };
  }
  return out;
}
