// A sequence-classification head on disk, saved beside the model or adapter it was trained with:
//   classifier.safetensors  "score.weight" F32 [num_labels, hidden]
//   classifier.json         { num_labels, max_len, pad_token_id }

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { CLS_HEAD } from "../arch/llama/names.js";
import { writeFileAtomic } from "../core/atomic.js";
import { SlimtuneError } from "../core/errors.js";
import { parseFields, readJsonObject } from "../core/json.js";
import { CONFIG_LIMITS } from "./hf-config.js";
import { SafetensorsFile, writeSafetensors } from "./safetensors.js";

export const CLASSIFIER_TENSORS = "classifier.safetensors";
export const CLASSIFIER_CONFIG = "classifier.json";

export interface ClassifierHead {
  head: Float32Array;
  numLabels: number;
  maxLen: number;
  padId: number;
  dir: string;
}

// Bounds before anything is sized from them: labels as data/tsv.ts's MAX_LABELS (formats cannot
// import data/), lengths and ids as hf-config's limits.
const MAX_HEAD_LABELS = 100_000;
const shape = {
  num_labels: z.number().int().positive().max(MAX_HEAD_LABELS),
  max_len: z.number().int().positive().max(CONFIG_LIMITS.max_position_embeddings),
  pad_token_id: z.number().int().nonnegative().max(CONFIG_LIMITS.vocab_size - 1),
};
const expected = {
  num_labels: `a positive integer up to ${MAX_HEAD_LABELS}`,
  max_len: `a positive integer up to ${CONFIG_LIMITS.max_position_embeddings}`,
  pad_token_id: "a non-negative token id",
};

/** What a head must fit: the model it is used with. */
export interface HeadModel {
  hiddenSize: number;
  vocabSize: number;
}

export function saveClassifierHead(dir: string, head: { data: Float32Array; shape: number[] }, meta: { maxLen: number; padId: number }): void {
  writeSafetensors(path.join(dir, CLASSIFIER_TENSORS), [{ name: CLS_HEAD, dtype: "F32", shape: head.shape, data: head.data }], { format: "pt" });
  const json = { num_labels: head.shape[0], max_len: meta.maxLen, pad_token_id: meta.padId };
  writeFileAtomic(path.join(dir, CLASSIFIER_CONFIG), `${JSON.stringify(json, null, 2)}\n`);
}

/**
 * The first of `dirs` holding a classifier head. With `model`, the head's width must be the
 * model's hidden size and its pad token an id the embedding has (either mismatch would only fail
 * inside the runtime).
 */
export function findClassifierHead(dirs: readonly string[], model?: HeadModel): ClassifierHead | null {
  for (const dir of dirs) {
    const config = path.join(dir, CLASSIFIER_CONFIG);
    if (!fs.existsSync(config)) continue;
    const json = readJsonObject(config, { missingFix: "train a head with finetune --task classify", invalidFix: "re-train the classifier" });
    const meta = parseFields(json, shape, expected, { file: config, fix: "re-train the classifier with finetune --task classify" });
    const file = SafetensorsFile.open(path.join(dir, CLASSIFIER_TENSORS));
    const entry = file.entries.get(CLS_HEAD);
    if (!entry) throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${CLS_HEAD}"`, file.path);
    if (entry.shape.length !== 2 || entry.shape[0] !== meta.num_labels) {
      throw new SlimtuneError("E_SHAPE", `tensor "${CLS_HEAD}" has shape [${entry.shape.join(", ")}]; ${CLASSIFIER_CONFIG} says ${meta.num_labels} labels — re-train the classifier`, file.path);
    }
    if (model && entry.shape[1] !== model.hiddenSize) {
      throw new SlimtuneError("E_SHAPE", `tensor "${CLS_HEAD}" has shape [${entry.shape.join(", ")}]; the model's hidden size is ${model.hiddenSize} — use the head with the model it was trained on`, file.path);
    }
    if (model && meta.pad_token_id >= model.vocabSize) {
      throw new SlimtuneError("E_CONFIG", `pad_token_id ${meta.pad_token_id} is not below the model's vocab_size ${model.vocabSize} — use the head with the model it was trained on`, config);
    }
    return { head: file.float32(CLS_HEAD), numLabels: meta.num_labels, maxLen: meta.max_len, padId: meta.pad_token_id, dir };
  }
  return null;
}
