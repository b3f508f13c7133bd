// Every tuning method slimtune offers, in one list: adding a method is one folder plus one line
// here. Adapter folders are recognised by asking each definition, and any method turns into
// something the scoring code can evaluate.

import fs from "node:fs";
import { SlimtuneError } from "../core/errors.js";
import { baseScoring } from "../models/base-scoring.js";
import { describeBase } from "../models/describe.js";
import type { LoadedBase } from "../models/load.js";
import type { ScoringModel } from "../models/scoring.js";
import { fineGatesDefinition } from "./finegates/index.js";
import { fullDefinition } from "./full/index.js";
import { loraDefinition } from "./lora/index.js";
import type { MethodDefinition, TuningMethod } from "./method.js";
import { peqaDefinition } from "./peqa/index.js";
import { qloraDefinition } from "./qlora/index.js";
import { lqloraDefinition } from "./lqlora/index.js";
import { reallmDefinition } from "./reallm/index.js";

export const methods: readonly MethodDefinition[] = [
  fullDefinition,
  loraDefinition,
  qloraDefinition,
  fineGatesDefinition,
  peqaDefinition,
  lqloraDefinition,
  reallmDefinition,
];

export function findMethod(name: string): MethodDefinition {
  const m = methods.find((d) => d.name === name);
  if (!m) throw new SlimtuneError("E_ARG", `unknown --method "${name}"; choose one of: ${methods.map((d) => d.name).join(", ")}`);
  return m;
}

/**
 * The method whose saved adapter `dir` holds, loaded onto `base`. Several methods may share an
 * adapter format (LoRA and QLoRA both write PEFT folders): the one made for the base's kind wins.
 */
export function loadAdapter(base: LoadedBase, dir: string): { definition: MethodDefinition; method: TuningMethod } {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", "adapter folder not found", dir);
  const candidates = methods.filter((d) => d.adapter?.detect(dir));
  const definition = candidates.find((d) => d.needs === base.kind) ?? candidates[0];
  if (!definition) {
    const known = methods.filter((d) => d.adapter).map((d) => d.name).join(", ");
    throw new SlimtuneError("E_CONFIG", `no adapter here that a method recognises (${known}: adapter_config.json for LoRA/QLoRA, peqa_adapter.json for PEQA, finegates.json for a FineGates run); pass an adapter folder that finetune wrote`, dir);
  }
  return { definition, method: definition.adapter!.load(base, dir) };
}

/** A tuning method as a ScoringModel: its trainable tensors fed as inputs, the rest frozen. */
export function methodScoring(method: TuningMethod): ScoringModel {
  return {
    config: method.config,
    params: (g) => method.params(g, "eval"),
    weightFeeds: () => Object.fromEntries(method.trainable),
    cacheKey: method.name,
  };
}

/** A model folder's base, with an optional adapter folder on top, ready for perplexity() or accuracy(). */
export function scoringFor(base: LoadedBase, adapterDir?: string): ScoringModel & { description: string } {
  if (!adapterDir) return baseScoring(base);
  const { definition, method } = loadAdapter(base, adapterDir);
  return { ...methodScoring(method), description: `${definition.name} adapter on the ${describeBase(base)}` };
}
