// What a FineGates run writes beside its pruned model, so the gates can be re-read: scored on the
// unpruned base before hardening (`eval --model BASE --adapter RUN`) or removed again at another
// ratio (`prune --from-gates RUN`).
//
//   finegates.json          { format: "slimtune-finegates", version: 2, base_model, target_sparsity,
//                             lambda, sigma, lora_rank, lora_alpha, lora_targets, residual_gates,
//                             hardened, ...the removal report }
//   finegates.safetensors   the gate parameters μ as trained (before hardening), F32 [n] each,
//                           "finegates.<layer>.mlp.channels_mu", "….self_attn.heads_mu",
//                           "finegates.<module>.row_mu" / ".col_mu"; and the LoRA factors inside the
//                           gates under their PEFT keys when lora_rank > 0.

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { HostParam } from "../arch/params.js";
import { writeFileAtomic } from "../core/atomic.js";
import { SlimtuneError } from "../core/errors.js";
import { parseFields, readJsonObject } from "../core/json.js";
import { SafetensorsFile, writeSafetensors } from "./safetensors.js";

export const FINEGATES_CONFIG = "finegates.json";
export const FINEGATES_TENSORS = "finegates.safetensors";

const configShape = {
  format: z.literal("slimtune-finegates"),
  version: z.literal(2),
  base_model: z.string().nullable(),
  target_sparsity: z.number().gt(0).lt(1),
  lambda: z.number().nonnegative(),
  sigma: z.number().positive(),
  lora_rank: z.number().int().nonnegative(),
  lora_alpha: z.number().positive(),
  lora_targets: z.array(z.string()),
  residual_gates: z.boolean(),
  hardened: z.boolean(),
};
const configExpected = {
  format: '"slimtune-finegates"',
  version: "2 (this slimtune reads version 2; older runs saved only the hardened gates — re-run finetune --method finegates)",
  base_model: "the unpruned model's folder, or null",
  target_sparsity: "a number strictly between 0 and 1",
  lambda: "a number >= 0",
  sigma: "a number > 0",
  lora_rank: "an integer >= 0",
  lora_alpha: "a number > 0",
  lora_targets: "a list of module names",
  residual_gates: "true or false",
  hardened: "true or false",
};

export type FineGatesRunConfig = z.infer<z.ZodObject<typeof configShape>>;

export interface FineGatesRun {
  dir: string;
  config: FineGatesRunConfig;
  /** Gate μ (as trained) and LoRA factors, by name. */
  tensors: Map<string, HostParam>;
}

/** Writes the two files into `dir` (a folder being published; each file is written atomically). */
export function saveFineGatesRun(dir: string, config: FineGatesRunConfig, tensors: ReadonlyMap<string, HostParam>, report: Record<string, unknown>): void {
  writeSafetensors(
    path.join(dir, FINEGATES_TENSORS),
    [...tensors].map(([name, p]) => ({ name, dtype: "F32" as const, shape: p.shape, data: p.data })),
    { format: "pt" },
  );
  writeFileAtomic(path.join(dir, FINEGATES_CONFIG), `${JSON.stringify({ ...config, ...report }, null, 1)}\n`);
}

export function isFineGatesRun(dir: string): boolean {
  return fs.existsSync(path.join(dir, FINEGATES_CONFIG));
}

/** Reads a run folder's gates; a typed error when `dir` is not a FineGates run. */
export function loadFineGatesRun(dir: string): FineGatesRun {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", "FineGates run folder not found; pass the --out folder of finetune --method finegates", dir);
  }
  const file = path.join(dir, FINEGATES_CONFIG);
  if (!fs.existsSync(file)) {
    throw new SlimtuneError("E_CONFIG", `not a FineGates run: it has no ${FINEGATES_CONFIG}; pass the --out folder of finetune --method finegates`, dir);
  }
  const json = readJsonObject(file, { missingFix: "pass the --out folder of finetune --method finegates", invalidFix: "re-run finetune --method finegates" });
  const config = parseFields(json, configShape, configExpected, { file, fix: "re-run finetune --method finegates" });
  const st = SafetensorsFile.open(path.join(dir, FINEGATES_TENSORS));
  const tensors = new Map<string, HostParam>();
  for (const [name, entry] of st.entries) {
    if (entry.dtype !== "F32") throw new SlimtuneError("E_SAFETENSORS", `tensor "${name}" is ${entry.dtype}; FineGates runs store F32`, st.path);
    tensors.set(name, { data: st.float32(name), shape: [...entry.shape] });
  }
  return { dir, config, tensors };
}
