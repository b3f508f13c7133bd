// A PEQA task adapter on disk: the tuned scale vectors of every quantized layer, plus JSON naming
// the base model and a fingerprint of its integer codes, so it is never applied to another base.
//
//   peqa_adapter.json          { format: "slimtune-peqa", version: 1, base_model, base_fingerprint,
//                                bits, group_size, scheme (the base's default spec), layers: [path…] }
//   adapter_model.safetensors  "<path>.scales": F32 [N] (per channel) or [N, G] (per group)

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { HostParam } from "../arch/params.js";
import { replaceDirAtomic, writeFileAtomic } from "../core/atomic.js";
import { SlimtuneError } from "../core/errors.js";
import { parseFields, readJsonObject } from "../core/json.js";
import { codesFingerprint } from "../quant/fingerprint.js";
import { scaleName, scaleShape } from "../quant/scales.js";
import { type QuantizedModel, gridLayer, gridSpecOf } from "../quant/types.js";
import { SafetensorsFile, encodeSafetensors } from "./safetensors.js";

export const PEQA_CONFIG = "peqa_adapter.json";
export const PEQA_TENSORS = "adapter_model.safetensors";

const configShape = {
  format: z.literal("slimtune-peqa"),
  version: z.literal(1),
  base_model: z.string().nullable(),
  base_fingerprint: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  scheme: z.string(),
  bits: z.number().int(),
  group_size: z.union([z.number().int().positive(), z.literal("channel")]),
  layers: z.array(z.string()),
};
const configExpected = {
  format: '"slimtune-peqa"',
  version: "1 (this slimtune reads version 1)",
  base_model: "the base folder's path, or null",
  base_fingerprint: '"sha256:" and 64 hex digits',
  scheme: 'the base\'s quantization scheme ("rtn" or "nf4")',
  bits: "the base's bits (an integer)",
  group_size: 'a positive integer or "channel"',
  layers: "a list of module paths",
};

export type PeqaAdapterConfig = z.infer<z.ZodObject<typeof configShape>>;

export interface PeqaAdapter {
  config: PeqaAdapterConfig;
  /** "<path>.scales" → scales, shaped as the graph inputs expect. */
  scales: Map<string, HostParam>;
}

export function savePeqaAdapter(outDir: string, qm: QuantizedModel, scales: ReadonlyMap<string, HostParam>): void {
  const files = peqaAdapterFiles(qm, scales);
  replaceDirAtomic(outDir, (tmp) => {
    for (const [name, chunks] of files) writeFileAtomic(path.join(tmp, name), chunks);
  });
}

/** The files of a PEQA adapter folder as bytes, by file name (what savePeqaAdapter writes; a page downloads them). */
export function peqaAdapterFiles(qm: QuantizedModel, scales: ReadonlyMap<string, HostParam>): Map<string, Uint8Array[]> {
  const spec = gridSpecOf(qm, "a PEQA adapter");
  const config: PeqaAdapterConfig = {
    format: "slimtune-peqa",
    version: 1,
    base_model: qm.sourceDir,
    base_fingerprint: codesFingerprint(qm),
    scheme: spec.scheme,
    bits: spec.bits,
    group_size: spec.groupSize,
    layers: [...qm.linears.keys()],
  };
  const tensors = encodeSafetensors(
    [...scales].map(([name, p]) => ({ name, dtype: "F32" as const, shape: p.shape, data: p.data })),
    { format: "pt" },
  );
  return new Map([
    [PEQA_TENSORS, tensors],
    [PEQA_CONFIG, [new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)]],
  ]);
}

export function isPeqaAdapter(dir: string): boolean {
  return fs.existsSync(path.join(dir, PEQA_CONFIG));
}

/** Reads an adapter and checks it was made for `qm` (same codes, same layers, same shapes). */
export function loadPeqaAdapter(dir: string, qm: QuantizedModel): PeqaAdapter {
  const file = path.join(dir, PEQA_CONFIG);
  if (!fs.existsSync(file)) throw new SlimtuneError("E_NOT_FOUND", `no ${PEQA_CONFIG}: not a PEQA adapter folder`, dir);
  const json = readJsonObject(file, { missingFix: "pass an adapter folder written by finetune --method peqa", invalidFix: "re-train or re-save the adapter" });
  return peqaFrom(json, file, SafetensorsFile.open(path.join(dir, PEQA_TENSORS)), qm);
}

/** The same checks on an adapter's two files in memory (a web page's picked files): peqa_adapter.json's object and the safetensors bytes. */
export function parsePeqaAdapter(json: Record<string, unknown>, tensorBytes: Uint8Array, qm: QuantizedModel): PeqaAdapter {
  return peqaFrom(json, PEQA_CONFIG, SafetensorsFile.fromBytes(PEQA_TENSORS, tensorBytes), qm);
}

function peqaFrom(json: Record<string, unknown>, file: string, tensors: SafetensorsFile, qm: QuantizedModel): PeqaAdapter {
  const config = parseFields(json, configShape, configExpected, { file, fix: "the adapter file is damaged; re-save it with finetune --method peqa" });
  const fingerprint = codesFingerprint(qm);
  if (config.base_fingerprint !== fingerprint) {
    throw new SlimtuneError(
      "E_CONFIG",
      `adapter was trained on another base (fingerprint ${config.base_fingerprint.slice(0, 19)}…, this model's is ${fingerprint.slice(0, 19)}…` +
        `${config.base_model ? `; it names ${config.base_model}` : ""}); evaluate it with the quantized model it was trained on`,
      file,
    );
  }
  const scales = new Map<string, HostParam>();
  for (const [p, q] of qm.linears) {
    const name = scaleName(p);
    const shape = scaleShape(gridLayer(q, p, "a PEQA adapter"));
    const entry = tensors.entries.get(name);
    if (!entry) throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}"`, tensors.path);
    if (entry.shape.join(",") !== shape.join(",")) {
      throw new SlimtuneError("E_SHAPE", `tensor "${name}" has shape [${entry.shape}], the base model needs [${shape}]`, tensors.path);
    }
    scales.set(name, { data: tensors.float32(name), shape });
  }
  return { config, scales };
}
