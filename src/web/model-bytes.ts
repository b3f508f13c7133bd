// A Hugging Face model folder given as bytes (files a user picked, or fetched): config.json,
// model.safetensors (or shards named by model.safetensors.index.json), tokenizer.json and
// tokenizer_config.json. Only the byte-level codecs are used, so this runs in a page.

import type { LlamaConfig } from "../arch/llama/config.js";
import { llamaParamShapes } from "../arch/llama/shapes.js";
import type { HostParam } from "../arch/params.js";
import { SlimtuneError } from "../core/errors.js";
import { isJsonObject, parseJsonText } from "../core/json.js";
import { ggufLlamaConfig, llamaFromGguf } from "../formats/gguf/llama.js";
import { type GgufFile, parseGgufBytes } from "../formats/gguf/reader.js";
import { tokenizerFromGguf } from "../formats/gguf/tokenizer.js";
import { parseLlamaConfig } from "../formats/hf-config.js";
import { SafetensorsFile } from "../formats/safetensors.js";
import { type TextTokenizer, buildTokenizer } from "../formats/tokenizer.js";
import { assertFiniteBase } from "../models/finite.js";
import { LlamaModel } from "../models/llama/model.js";

export interface ModelFromBytes {
  model: LlamaModel;
  tokenizer: TextTokenizer;
  /** Bytes of every file read (what the page shows as the model's size). */
  fileBytes: number;
  /** tokenizer_config.json's object ({} without one): its chat_template and special tokens render instruction data. */
  tokenizerConfig: Record<string, unknown>;
  /** tokenizer.json's object (a GGUF file's rebuilt from its metadata): what a GGUF download writes back. */
  tokenizerJson: Record<string, unknown>;
}

/** File name (no folder) → bytes. */
export type FileBytes = ReadonlyMap<string, Uint8Array>;

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

function required(files: FileBytes, name: string, fix: string): Uint8Array {
  const bytes = files.get(name);
  if (!bytes) throw new SlimtuneError("E_NOT_FOUND", `${name} is missing; ${fix}`, name);
  return bytes;
}

function jsonObject(files: FileBytes, name: string, fix: string): Record<string, unknown> {
  const value = parseJsonText(text(required(files, name, fix)), { file: name, invalidFix: "re-download it" });
  if (!isJsonObject(value)) throw new SlimtuneError("E_CONFIG", "must be a JSON object; re-download it", name);
  return value;
}

/** The safetensors file holding each tensor: the single file, or the shards the index names. */
function tensorFiles(files: FileBytes): (name: string) => SafetensorsFile {
  const opened = new Map<string, SafetensorsFile>();
  const open = (file: string) => {
    let st = opened.get(file);
    if (!st) {
      st = SafetensorsFile.fromBytes(file, required(files, file, "pick every shard the index names"));
      opened.set(file, st);
    }
    return st;
  };
  if (files.has("model.safetensors")) return () => open("model.safetensors");
  const index = jsonObject(files, "model.safetensors.index.json", "pick a folder with model.safetensors (or its shards and their index)");
  const map = index.weight_map;
  if (!isJsonObject(map)) throw new SlimtuneError("E_SAFETENSORS", '"weight_map" must map tensor names to shard files', "model.safetensors.index.json");
  return (name) => {
    const shard = map[name];
    if (typeof shard !== "string") throw new SlimtuneError("E_SAFETENSORS", `no shard holds tensor "${name}"`, "model.safetensors.index.json");
    return open(shard);
  };
}

/** config.json alone (the page checks what fits in memory before reading any weights). */
export function configFromBytes(files: FileBytes): LlamaConfig {
  return parseLlamaConfig(jsonObject(files, "config.json", "pick the whole model folder"), "config.json");
}

/** Parses a float LLaMA-family model and its tokenizer from the folder's files. */
export function modelFromBytes(files: FileBytes): ModelFromBytes {
  const config = configFromBytes(files);
  const fileOf = tensorFiles(files);
  const weights = new Map<string, HostParam>();
  for (const [name, shape] of llamaParamShapes(config)) {
    const st = fileOf(name);
    const entry = st.entries.get(name);
    if (!entry) throw new SlimtuneError("E_SAFETENSORS", `missing tensor "${name}"; the weights do not match config.json`, st.path);
    if (entry.shape.join(",") !== shape.join(",")) {
      throw new SlimtuneError("E_SHAPE", `tensor "${name}" has shape [${entry.shape}]; config.json implies [${shape}]`, st.path);
    }
    weights.set(name, { data: st.float32(name), shape });
  }
  const model = new LlamaModel(config, weights, null);
  assertFiniteBase({ kind: "float", model }, "model.safetensors");
  const tokenizerJson = jsonObject(files, "tokenizer.json", "pick the model folder with its tokenizer.json");
  const tokenizerConfig = files.has("tokenizer_config.json") ? jsonObject(files, "tokenizer_config.json", "") : {};
  const tokenizer = buildTokenizer(tokenizerJson, tokenizerConfig, "tokenizer.json");
  let fileBytes = 0;
  for (const b of files.values()) fileBytes += b.byteLength;
  return { model, tokenizer, fileBytes, tokenizerConfig, tokenizerJson };
}

/** A GGUF model file's header, parsed and checked from bytes (tensor data is read only by modelFromGguf). */
export function ggufFromBytes(bytes: Uint8Array, name: string): GgufFile {
  return parseGgufBytes(bytes, name);
}

/** The config a GGUF file's keys give (what the page checks against its memory limit before dequantizing). */
export function configFromGguf(gguf: GgufFile): LlamaConfig {
  return ggufLlamaConfig(gguf).config;
}

/** Tensors of each ggml type in the file, e.g. "Q8_0 × 14, F32 × 9" (what the page shows beside the size). */
export function ggufTypeSummary(gguf: GgufFile): string {
  const counts = new Map<string, number>();
  for (const t of gguf.tensors.values()) counts.set(t.type.name, (counts.get(t.type.name) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([type, n]) => `${type} × ${n}`).join(", ");
}

/**
 * A LLaMA-family model from a GGUF file's bytes: its config and tokenizer from the metadata, its
 * weights dequantized to float32 (the page quantizes them again to train PEQA, as Node does).
 */
export function modelFromGguf(gguf: GgufFile): ModelFromBytes {
  if (!gguf.bytes) throw new SlimtuneError("E_ARG", "modelFromGguf needs a header parsed from bytes (ggufFromBytes)", gguf.file);
  configFromGguf(gguf); // refuses architectures the page's LLaMA model does not run (gpt2) before any tensor is read
  const { config, weights } = llamaFromGguf(gguf);
  const model = new LlamaModel(config, weights, null);
  assertFiniteBase({ kind: "float", model }, gguf.file);
  const { json, config: tokenizerConfig } = tokenizerFromGguf(gguf.metadata, gguf.file);
  const tokenizer = buildTokenizer(json as Record<string, unknown>, tokenizerConfig as Record<string, unknown>, gguf.file);
  return { model, tokenizer, fileBytes: gguf.bytes.byteLength, tokenizerConfig: tokenizerConfig as Record<string, unknown>, tokenizerJson: json as Record<string, unknown> };
}
