// Training checkpoints: trainable tensors, optimizer moments, the batch sampler's RNG and the step,
// written atomically so a kill at any moment leaves the previous checkpoint intact.
//
//   checkpoint/trainable.safetensors   every trainable tensor, F32
//   checkpoint/optimizer.safetensors   "m.<name>", "v.<name>" (AdamW moments); metadata {"step"}
//   checkpoint/state.json              CheckpointState below

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { HostParam } from "../arch/params.js";
import { replaceDirAtomic, writeFileAtomic } from "../core/atomic.js";
import { SlimtuneError, quote } from "../core/errors.js";
import { parseFields, readJsonObject, shownJson } from "../core/json.js";
import { SafetensorsFile, writeSafetensors } from "./safetensors.js";

const FORMAT = "slimtune-checkpoint";

const stateShape = {
  format: z.literal(FORMAT),
  version: z.literal(1),
  method: z.string(),
  step: z.number().int().nonnegative(),
  rng: z.array(z.number().int().min(0).max(0xffffffff)).length(4),
  fixed: z.record(z.string(), z.union([z.number(), z.string()])),
  elapsedSeconds: z.number().nonnegative(),
  tokensSeen: z.number().nonnegative(),
};
const stateExpected = {
  format: `"${FORMAT}"`,
  version: "1",
  method: "the method's name",
  step: "a non-negative integer",
  rng: "4 unsigned 32-bit words",
  fixed: "an object of the run's fixed settings",
  elapsedSeconds: "a number of seconds",
  tokensSeen: "a token count",
};

export type CheckpointState = z.infer<z.ZodObject<typeof stateShape>>;

/** An optimizer's state as stored: its step count and per-tensor first and second moments. */
export interface OptimizerMoments {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export function saveCheckpoint(dir: string, state: CheckpointState, trainable: ReadonlyMap<string, HostParam>, moments: OptimizerMoments): void {
  replaceDirAtomic(dir, (tmp) => {
    writeSafetensors(
      path.join(tmp, "trainable.safetensors"),
      [...trainable].map(([name, p]) => ({ name, dtype: "F32" as const, shape: p.shape, data: p.data })),
    );
    const optimizerTensors = [];
    for (const [name, p] of trainable) {
      const m = moments.m.get(name);
      const v = moments.v.get(name);
      if (m && v) {
        optimizerTensors.push({ name: `m.${name}`, dtype: "F32" as const, shape: p.shape, data: m });
        optimizerTensors.push({ name: `v.${name}`, dtype: "F32" as const, shape: p.shape, data: v });
      }
    }
    writeSafetensors(path.join(tmp, "optimizer.safetensors"), optimizerTensors, { step: String(moments.step) });
    writeFileAtomic(path.join(tmp, "state.json"), `${JSON.stringify(state, null, 1)}\n`);
  });
}

export function hasCheckpoint(dir: string): boolean {
  return fs.existsSync(path.join(dir, "state.json"));
}

/**
 * Restores the trainable tensors in place and returns the saved state and optimizer moments, after
 * checking that the checkpoint fits this run (same method, same fixed settings, same tensors).
 */
export function loadCheckpoint(
  dir: string,
  expected: { method: string; fixed: Record<string, number | string> },
  trainable: ReadonlyMap<string, HostParam>,
): { state: CheckpointState; moments: OptimizerMoments } {
  const stateFile = path.join(dir, "state.json");
  if (!fs.existsSync(stateFile)) {
    throw new SlimtuneError("E_CHECKPOINT", "no checkpoint to resume from; run without --resume to start fresh", dir);
  }
  const json = readJsonObject(stateFile, { code: "E_CHECKPOINT", missingFix: "run without --resume to start fresh", invalidFix: "the checkpoint is damaged; start a fresh run" });
  if (json.format !== FORMAT) throw new SlimtuneError("E_CHECKPOINT", `not a slimtune checkpoint (format ${shownJson(json.format)})`, stateFile);
  const state = parseFields(json, stateShape, stateExpected, { file: stateFile, code: "E_CHECKPOINT", fix: "the checkpoint is damaged; start a fresh run with a new --out" });
  if (state.method !== expected.method) {
    throw new SlimtuneError("E_CHECKPOINT", `checkpoint was made by --method ${quote(state.method)}, this run uses --method ${expected.method}; use the same method or a new --out`, stateFile);
  }
  for (const [key, value] of Object.entries(expected.fixed)) {
    if (state.fixed[key] !== value) {
      throw new SlimtuneError("E_CHECKPOINT", `checkpoint has ${key} = ${shownJson(state.fixed[key])}, this run asks for ${value}; resume with the same ${key} or use a new --out`, stateFile);
    }
  }
  const tensors = SafetensorsFile.open(path.join(dir, "trainable.safetensors"));
  for (const [name, p] of trainable) {
    if (!tensors.entries.has(name)) throw new SlimtuneError("E_CHECKPOINT", `checkpoint lacks trainable tensor ${quote(name)}`, tensors.path);
    const data = tensors.float32(name);
    if (data.length !== p.data.length) throw new SlimtuneError("E_CHECKPOINT", `tensor ${quote(name)} has ${data.length} values, expected ${p.data.length}`, tensors.path);
    p.data.set(data);
  }
  const opt = SafetensorsFile.open(path.join(dir, "optimizer.safetensors"));
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const name of trainable.keys()) {
    if (opt.entries.has(`m.${name}`)) {
      const mi = opt.float32(`m.${name}`);
      const vi = opt.float32(`v.${name}`);
      const n = trainable.get(name)!.data.length;
      if (mi.length !== n || vi.length !== n) throw new SlimtuneError("E_CHECKPOINT", `moments of ${quote(name)} have ${mi.length}/${vi.length} values, the tensor has ${n}`, opt.path);
      m.set(name, mi);
      v.set(name, vi);
    }
  }
  return { state, moments: { step: optimizerStep(opt, state.step), m, v } };
}

/**
 * The optimizer's step from optimizer.safetensors' metadata, checked against state.json's: the
 * optimizer counts only applied updates (a step with non-finite gradients is skipped), so it may lag
 * the training step but never lead it. A missing, malformed or leading count means the two files
 * come from different checkpoints; resuming would mis-correct the moments' bias.
 */
function optimizerStep(opt: SafetensorsFile, trainingStep: number): number {
  const raw = opt.metadata.step;
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) {
    throw new SlimtuneError("E_CHECKPOINT", `metadata "step" is ${raw === undefined ? "missing" : quote(raw)}; expected the optimizer's step count — the checkpoint is damaged, start a fresh run with a new --out`, opt.path);
  }
  const step = Number(raw);
  if (step > trainingStep) {
    throw new SlimtuneError("E_CHECKPOINT", `optimizer step ${step} is past state.json's step ${trainingStep}; the two files come from different checkpoints — start a fresh run with a new --out`, opt.path);
  }
  return step;
}
