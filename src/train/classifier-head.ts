// Reading back the classification head that a classify run saved beside its model or adapter.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../errors.js";
import { SafetensorsFile } from "../formats/safetensors.js";
import { HEAD } from "../models/llama/cls-graphs.js";
import { CLASSIFIER_CONFIG, CLASSIFIER_TENSORS } from "./classify-task.js";

export interface ClassifierHead {
  head: Float32Array;
  numLabels: number;
  maxLen: number;
  padId: number;
  dir: string;
}

/** The first of `dirs` holding a classifier head. */
export function findClassifierHead(dirs: readonly string[]): ClassifierHead | null {
  for (const dir of dirs) {
    const config = path.join(dir, CLASSIFIER_CONFIG);
    if (!fs.existsSync(config)) continue;
    const meta = JSON.parse(fs.readFileSync(config, "utf8")) as { num_labels: number; max_len: number; pad_token_id: number };
    const file = SafetensorsFile.open(path.join(dir, CLASSIFIER_TENSORS));
    if (!file.entries.has(HEAD)) throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${HEAD}"`, file.path);
    const head = file.float32(HEAD);
    return { head, numLabels: meta.num_labels, maxLen: meta.max_len, padId: meta.pad_token_id, dir };
  }
  return null;
}
