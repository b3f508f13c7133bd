// Training checkpoints: trainable tensors, AdamW moments, the batch sampler's RNG and the step,
// written atomically so a kill at any moment leaves the previous checkpoint intact.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../errors.js";
import { SafetensorsFile, writeSafetensors } from "../formats/safetensors.js";
import type { HostParam } from "../models/llama/params.js";
import { replaceDirAtomic, writeFileAtomic } from "../util/atomic.js";
import type { AdamW } from "./adamw.js";

const FORMAT = "slimtune-checkpoint";

export interface CheckpointState {
  format: typeof FORMAT;
  version: 1;
  method: string;
  step: number;
  rng: number[];
  /** Options that must not change across a resume (batch, seq, seed, …). */
  fixed: Record<string, number | string>;
  elapsedSeconds: number;
  tokensSeen: number;
}

export function saveCheckpoint(dir: string, state: CheckpointState, trainable: ReadonlyMap<string, HostParam>, optimizer: AdamW): void {
  const moments = optimizer.exportState();
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

/** Restores tensors and optimizer in place; returns the saved state after checking it fits this run. */
export function loadCheckpoint(
  dir: string,
  expected: { method: string; fixed: Record<string, number | string> },
  trainable: ReadonlyMap<string, HostParam>,
  optimizer: AdamW,
): CheckpointState {
  const stateFile = path.join(dir, "state.json");
  if (!fs.existsSync(stateFile)) {
    throw new SlimtuneError("E_CHECKPOINT", "no checkpoint to resume from; run without --resume to start fresh", dir);
  }
  const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as CheckpointState;
  if (state.format !== FORMAT) throw new SlimtuneError("E_CHECKPOINT", `not a slimtune checkpoint (format "${state.format}")`, stateFile);
  if (state.method !== expected.method) {
    throw new SlimtuneError("E_CHECKPOINT", `checkpoint was made by --method ${state.method}, this run uses --method ${expected.method}; use the same method or a new --out`, stateFile);
  }
  for (const [key, value] of Object.entries(expected.fixed)) {
    if (state.fixed[key] !== value) {
      throw new SlimtuneError("E_CHECKPOINT", `checkpoint has ${key} = ${state.fixed[key]}, this run asks for ${value}; resume with the same ${key} or use a new --out`, stateFile);
    }
  }
  const tensors = SafetensorsFile.open(path.join(dir, "trainable.safetensors"));
  for (const [name, p] of trainable) {
    if (!tensors.entries.has(name)) throw new SlimtuneError("E_CHECKPOINT", `checkpoint lacks trainable tensor "${name}"`, tensors.path);
    const data = tensors.float32(name);
    if (data.length !== p.data.length) throw new SlimtuneError("E_CHECKPOINT", `tensor "${name}" has ${data.length} values, expected ${p.data.length}`, tensors.path);
    p.data.set(data);
  }
  const opt = SafetensorsFile.open(path.join(dir, "optimizer.safetensors"));
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  for (const name of trainable.keys()) {
    if (opt.entries.has(`m.${name}`)) {
      m.set(name, opt.float32(`m.${name}`));
      v.set(name, opt.float32(`v.${name}`));
    }
  }
  optimizer.importState({ step: Number(opt.metadata.step ?? 0), m, v });
  return state;
}
