// The pruning flags shared by `prune`, `qpruner` and `pruning-adapter` (ratio, importance, schedule,
// layers kept whole, channel rounding), their parsing, and the per-layer description of a result.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { isQuantizedFolder } from "../formats/quantized/index.js";
import { LlamaModel } from "../models/llama/model.js";
import { type ImportanceKind, type TaylorVariant, importanceKinds, taylorVariants } from "../prune/importance.js";
import { type Schedule, defaultPlanOptions, schedules } from "../prune/plan.js";
import type { PruneOptions } from "../prune/prune-model.js";
import type { PruneReport } from "../prune/surgery.js";
import { intArg } from "./args.js";

export function pruneArgs(defaults: { ratio?: string; importance: ImportanceKind }) {
  return {
    ratio: { type: "string", description: "Fraction of the decoder blocks' linear parameters to remove, in (0, 1)", ...(defaults.ratio ? { default: defaults.ratio } : {}) },
    importance: { type: "string", description: `Group importance: ${importanceKinds.join(", ")}`, default: defaults.importance },
    taylor: { type: "string", description: "taylor: element (Σ|w·g|) or vector (|Σ w·g| per slice), LLM-Pruner's two first-order variants", default: "element" },
    schedule: { type: "string", description: "layer (the same ratio in every pruned layer) or global (one ranking across layers)", default: "layer" },
    "keep-first": { type: "string", description: "Leave the first N layers whole", default: "0" },
    "keep-last": { type: "string", description: "Leave the last N layers whole", default: "0" },
    "channel-multiple": { type: "string", description: "Kept MLP channels per layer are a multiple of this (32 keeps every GPTQ width packable; 1: exact)", default: String(defaultPlanOptions.channelMultiple) },
    "allow-empty-layers": { type: "boolean", description: "Allow a layer to lose every head or every channel" },
  } as const;
}

export function oneOf<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new SlimtuneError("E_ARG", `--${flag} "${value}" is unknown; choose ${choices.join(", ")}`);
  return value as T;
}

/** --ratio as given: strictly between 0 and 1. */
export function ratioArg(value: string | undefined): number {
  const r = Number(value);
  if (value === undefined || value === "" || !(r > 0 && r < 1)) {
    throw new SlimtuneError("E_ARG", `--ratio "${value ?? ""}" must be a number strictly between 0 and 1, e.g. --ratio 0.2 to remove 20 % of the decoder blocks' parameters`);
  }
  return r;
}

type PruneFlagValues = { ratio?: string; importance: string; taylor: string; schedule: string; "keep-first"?: string; "keep-last"?: string; "channel-multiple"?: string; "allow-empty-layers"?: boolean };

/** The flags as pruning options (without the data source). */
export function parsePruneFlags(args: PruneFlagValues, rest: { samples: number; seed: number; threads?: number; minChannelMultiple?: number }): Omit<PruneOptions, "source" | "onProgress"> {
  return {
    ratio: ratioArg(args.ratio),
    importance: oneOf<ImportanceKind>("importance", args.importance, importanceKinds),
    taylor: oneOf<TaylorVariant>("taylor", args.taylor, taylorVariants),
    schedule: oneOf<Schedule>("schedule", args.schedule, schedules),
    keepFirst: intArg("keep-first", args["keep-first"], 0, 0),
    keepLast: intArg("keep-last", args["keep-last"], 0, 0),
    channelMultiple: Math.max(intArg("channel-multiple", args["channel-multiple"], defaultPlanOptions.channelMultiple), rest.minChannelMultiple ?? 1),
    allowEmptyLayers: Boolean(args["allow-empty-layers"]),
    samples: rest.samples,
    seed: rest.seed,
    threads: rest.threads,
  };
}

/** True when the importance is measured on data (taylor, task-gradient). */
export const needsData = (kind: ImportanceKind): boolean => kind === "taylor" || kind === "task-gradient";

/** A float model folder for --model, with the errors a user can act on. */
export function floatModelArg(dir: string): LlamaModel {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_NOT_FOUND", `--model "${dir}" is not a folder; pass a Hugging Face model folder`);
  if (isQuantizedFolder(dir)) throw new SlimtuneError("E_ARG", `--model "${dir}" is quantized; pruning needs the float model — pass the folder it was quantized from`);
  return LlamaModel.load(dir);
}

export function outArg(out: string, modelDir: string): string {
  if (path.resolve(out) === path.resolve(modelDir)) throw new SlimtuneError("E_ARG", `--out "${out}" is the --model folder; write the result to a new folder`);
  return out;
}

/** Parameters before/after and the widths of every layer, one line each. */
export function describePrune(report: PruneReport): string[] {
  const pct = (a: number, b: number) => `${((100 * (b - a)) / b).toFixed(1)} %`;
  return [
    `parameters ${report.parametersBefore.toLocaleString("en")} → ${report.parametersAfter.toLocaleString("en")} (−${pct(report.parametersAfter, report.parametersBefore)}; decoder blocks ${report.blockParametersBefore.toLocaleString("en")} → ${report.blockParametersAfter.toLocaleString("en")}, −${pct(report.blockParametersAfter, report.blockParametersBefore)})`,
    ...report.layers.map((l, i) => `  layer ${i}: heads ${l.heads[0]} → ${l.heads[1]}, kv heads ${l.kvHeads[0]} → ${l.kvHeads[1]}, MLP channels ${l.channels[0]} → ${l.channels[1]}`),
  ];
}
