// A PEQA task adapter on disk: the tuned scale vectors of every quantized layer, plus JSON naming
// the base model and a fingerprint of its integer codes, so it is never applied to another base.
//
//   peqa_adapter.json          { format: "slimtune-peqa", version: 1, base_model, base_fingerprint,
//                                bits, group_size, scheme, layers: [path…], trained_steps? }
//   adapter_model.safetensors  "<path>.scales": F32 [N] (per channel) or [N, G] (per group)

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../../errors.js";
import { SafetensorsFile, writeSafetensors } from "../../formats/safetensors.js";
import type { HostParam } from "../../models/llama/params.js";
import { scaleName, scaleShape } from "../../parts/quantized-params.js";
import type { QuantizedModel } from "../../quant/types.js";
import { replaceDirAtomic, writeFileAtomic } from "../../util/atomic.js";

export const PEQA_CONFIG = "peqa_adapter.json";
export const PEQA_TENSORS = "adapter_model.safetensors";

export interface PeqaAdapterConfig {
  format: "slimtune-peqa";
  version: 1;
  base_model: string | null;
  base_fingerprint: string;
  scheme: string;
  bits: number;
  group_size: number | "channel";
  layers: string[];
}

export interface PeqaAdapter {
  config: PeqaAdapterConfig;
  /** "<path>.scales" → scales, shaped as the graph inputs expect. */
  scales: Map<string, HostParam>;
}

/** sha256 over every layer's path, shape, codes and zero points: what scales are only valid for. */
export function codesFingerprint(qm: QuantizedModel): string {
  const h = createHash("sha256");
  for (const p of [...qm.linears.keys()].sort()) {
    const q = qm.linears.get(p)!;
    h.update(`${p}:${q.outFeatures}x${q.inFeatures}/${q.groupSize}:${q.spec.bits}\n`);
    h.update(q.codes);
    if (q.zeros) h.update(q.zeros);
  }
  return `sha256:${h.digest("hex")}`;
}

export function savePeqaAdapter(outDir: string, qm: QuantizedModel, scales: ReadonlyMap<string, HostParam>): void {
  const config: PeqaAdapterConfig = {
    format: "slimtune-peqa",
    version: 1,
    base_model: qm.sourceDir,
    base_fingerprint: codesFingerprint(qm),
    scheme: qm.spec.scheme,
    bits: qm.spec.bits,
    group_size: qm.spec.groupSize,
    layers: [...qm.linears.keys()],
  };
  replaceDirAtomic(outDir, (tmp) => {
    writeSafetensors(
      path.join(tmp, PEQA_TENSORS),
      [...scales].map(([name, p]) => ({ name, dtype: "F32" as const, shape: p.shape, data: p.data })),
      { format: "pt" },
    );
    writeFileAtomic(path.join(tmp, PEQA_CONFIG), `${JSON.stringify(config, null, 2)}\n`);
  });
}

export function isPeqaAdapter(dir: string): boolean {
  return fs.existsSync(path.join(dir, PEQA_CONFIG));
}

/** Reads an adapter and checks it was made for `qm` (same codes, same layers, same shapes). */
export function loadPeqaAdapter(dir: string, qm: QuantizedModel): PeqaAdapter {
  const file = path.join(dir, PEQA_CONFIG);
  if (!fs.existsSync(file)) throw new SlimtuneError("E_NOT_FOUND", `no ${PEQA_CONFIG}: not a PEQA adapter folder`, dir);
  const config = JSON.parse(fs.readFileSync(file, "utf8")) as PeqaAdapterConfig;
  if (config.format !== "slimtune-peqa") {
    throw new SlimtuneError("E_CONFIG", `format "${config.format}" is not "slimtune-peqa"`, file);
  }
  const fingerprint = codesFingerprint(qm);
  if (config.base_fingerprint !== fingerprint) {
    throw new SlimtuneError(
      "E_CONFIG",
      `adapter was trained on another base (fingerprint ${config.base_fingerprint.slice(0, 19)}…, this model's is ${fingerprint.slice(0, 19)}…` +
        `${config.base_model ? `; it names ${config.base_model}` : ""}); evaluate it with the quantized model it was trained on`,
      file,
    );
  }
  const tensors = SafetensorsFile.open(path.join(dir, PEQA_TENSORS));
  const scales = new Map<string, HostParam>();
  for (const p of qm.linears.keys()) {
    const name = scaleName(p);
    const shape = scaleShape(qm, p);
    const entry = tensors.entries.get(name);
    if (!entry) throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}"`, tensors.path);
    if (entry.shape.join(",") !== shape.join(",")) {
      throw new SlimtuneError("E_SHAPE", `tensor "${name}" has shape [${entry.shape}], the base model needs [${shape}]`, tensors.path);
    }
    scales.set(name, { data: tensors.float32(name), shape });
  }
  return { config, scales };
}
