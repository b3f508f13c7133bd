// Tensors of a model folder: one model.safetensors, or the shards listed by
// model.safetensors.index.json, opened lazily and checked for dtype and shape before any use.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { z } from "zod";
import { parseFields, readJsonObject } from "../core/json.js";
import { SafetensorsFile, type SafetensorsDType, type SafetensorsEntry } from "./safetensors.js";

export const weightsFile = "model.safetensors";
export const indexFile = "model.safetensors.index.json";

/** A sharded folder's index (model.safetensors.index.json): each tensor's shard, as a path in `dir`. */
export function readWeightMap(dir: string): Map<string, string> {
  const index = path.join(dir, indexFile);
  const json = readJsonObject(index, { code: "E_SAFETENSORS", missingFix: "re-download the model", invalidFix: "re-download it" });
  const { weight_map: weightMap } = parseFields(
    json,
    { weight_map: z.record(z.string(), z.string().regex(/^[^/\\]+$/)) },
    { weight_map: "an object mapping tensor names to shard file names in the same folder" },
    { file: index, code: "E_SAFETENSORS", fix: "re-download it" },
  );
  return new Map(Object.entries(weightMap).map(([name, shard]) => [name, path.join(dir, shard)]));
}

/** Tensors of a folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export class FolderTensors {
  private readonly open = new Map<string, SafetensorsFile>();

  private constructor(
    private readonly dir: string,
    private readonly single: string | null,
    private readonly weightMap: Map<string, string>,
  ) {}

  static open(dir: string): FolderTensors {
    const single = path.join(dir, weightsFile);
    if (fs.existsSync(single)) return new FolderTensors(dir, single, new Map());
    const index = path.join(dir, indexFile);
    if (!fs.existsSync(index)) {
      throw new SlimtuneError("E_NOT_FOUND", `model folder "${dir}" has neither ${weightsFile} nor ${indexFile}; re-export it with slimtune quantize`);
    }
    const files = readWeightMap(dir);
    return new FolderTensors(dir, null, files);
  }

  /** The file that should hold `name` (for error messages). */
  fileOf(name: string): string {
    return this.single ?? this.weightMap.get(name) ?? path.join(this.dir, indexFile);
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.fileOf(name);
    let st = this.open.get(file);
    if (!st) {
      st = SafetensorsFile.open(file);
      this.open.set(file, st);
    }
    return st;
  }

  has(name: string): boolean {
    if (this.single === null && !this.weightMap.has(name)) return false;
    return this.fileFor(name).entries.has(name);
  }

  /** The entry of `name`, or E_SAFETENSORS naming the tensor and the file (with `why` saying what it is for). */
  entry(name: string, why: string): SafetensorsEntry {
    const entry = this.single === null && !this.weightMap.has(name) ? undefined : this.fileFor(name).entries.get(name);
    if (!entry) {
      const file = this.fileOf(name);
      throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}" in ${path.basename(file)} (${why}); the folder is incomplete or was written for a different config.json — re-export it`, file);
    }
    return entry;
  }

  /** Checks that `name` exists with one of `dtypes` and exactly `shape`; returns its entry. */
  check(name: string, dtypes: readonly SafetensorsDType[], shape: readonly number[], why: string): SafetensorsEntry {
    const entry = this.entry(name, why);
    const file = this.fileOf(name);
    if (!dtypes.includes(entry.dtype)) {
      throw new SlimtuneError("E_SAFETENSORS", `tensor "${name}" has dtype ${entry.dtype}; expected ${dtypes.join(" or ")} (${why}) — re-export the folder`, file);
    }
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new SlimtuneError(
        "E_SHAPE",
        `tensor "${name}" has shape [${entry.shape.join(", ")}]; config.json and quantization_config imply [${shape.join(", ")}] (${why}) — the tensors and config come from different models`,
        file,
      );
    }
    return entry;
  }

  /** Checks dtype and shape, then returns a copy of the raw bytes (aligned, safe to view as any typed array). */
  bytes(name: string, dtypes: readonly SafetensorsDType[], shape: readonly number[], why: string): { dtype: SafetensorsDType; bytes: ArrayBuffer } {
    const { dtype } = this.check(name, dtypes, shape, why);
    return { dtype, bytes: this.fileFor(name).raw(name).buffer as ArrayBuffer };
  }

  /** A float tensor (F32, F16, BF16 or F64) as float32, after the shape check. */
  float32(name: string, shape: readonly number[], why: string): Float32Array {
    this.check(name, ["F32", "F16", "BF16", "F64"], shape, why);
    return this.fileFor(name).float32(name);
  }

  /** Rows [row0, row0 + rows) of a float matrix as float32, after the dtype and shape check (SafetensorsFile.float32Rows). */
  float32Rows(name: string, shape: readonly number[], row0: number, rows: number, why: string): Float32Array {
    this.check(name, ["F32", "F16", "BF16", "F64"], shape, why);
    return this.fileFor(name).float32Rows(name, row0, rows);
  }
}

