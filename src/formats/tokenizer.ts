// Loads a model folder's tokenizer.json with @huggingface/tokenizers behind a small text-in, ids-out interface.

import fsSync from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { SlimtuneError } from "../core/errors.js";
import { readGgufHeader } from "./gguf/reader.js";
import { tokenizerFromGguf } from "./gguf/tokenizer.js";

export interface TextTokenizer {
  /** Token ids for `text` with no BOS or other special tokens added. */
  encode(text: string): number[];
  /**
   * Token ids of a prompt as transformers tokenizes it: with BOS only when tokenizer_config.json's
   * add_bos_token says so or, without that key, when tokenizer.json's post-processor adds it.
   */
  encodePrompt(text: string): number[];
  decode(ids: number[]): string;
  /** One past the largest token id, i.e. the embedding rows the model needs. */
  vocabSize: number;
  eosTokenId?: number;
  bosTokenId?: number;
}

async function readJson(file: string, required: boolean): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    if (!required && missing) return undefined;
    const problem = missing ? "does not exist" : `cannot be read (${(err as Error).message})`;
    throw new SlimtuneError(
      "E_TOKENIZER",
      `${problem}; copy ${path.basename(file)} from the original Hugging Face model into the folder`,
      file,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SlimtuneError("E_TOKENIZER", `is not valid JSON (${(err as Error).message}); re-download it`, file);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new SlimtuneError("E_TOKENIZER", "must be a JSON object; re-download it", file);
  }
  return json as Record<string, unknown>;
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Loads `<modelDir>/tokenizer.json` (and tokenizer_config.json when present), or a GGUF file's tokenizer. */
export async function loadTokenizer(modelDir: string): Promise<TextTokenizer> {
  if (isGgufFile(modelDir)) {
    const { json, config } = tokenizerFromGguf(readGgufHeader(modelDir).metadata, modelDir);
    return buildTokenizer(json, config, modelDir);
  }
  const file = path.join(modelDir, "tokenizer.json");
  const json = (await readJson(file, true))!;
  const config = (await readJson(path.join(modelDir, "tokenizer_config.json"), false)) ?? {};
  return buildTokenizer(json, config, file);
}

/** True when `p` names a GGUF file (models can be loaded from one). */
export function isGgufFile(p: string): boolean {
  return p.toLowerCase().endsWith(".gguf") && (fsSync.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false);
}

/** tokenizer.json and tokenizer_config.json of a model folder or GGUF file, as JSON. */
export function readTokenizerFiles(source: string): { json: Record<string, unknown>; config: Record<string, unknown>; file: string } {
  if (isGgufFile(source)) return { ...tokenizerFromGguf(readGgufHeader(source).metadata, source), file: source };
  const file = path.join(source, "tokenizer.json");
  const read = (f: string, required: boolean): Record<string, unknown> | undefined => {
    if (!fsSync.existsSync(f)) {
      if (!required) return undefined;
      throw new SlimtuneError("E_TOKENIZER", `does not exist; copy ${path.basename(f)} from the original Hugging Face model into the folder`, f);
    }
    try {
      const v = JSON.parse(fsSync.readFileSync(f, "utf8")) as unknown;
      if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // reported below
    }
    throw new SlimtuneError("E_TOKENIZER", "is not a JSON object; re-download it", f);
  };
  return { json: read(file, true)!, config: read(path.join(source, "tokenizer_config.json"), false) ?? {}, file };
}

/** A tokenizer from the contents of tokenizer.json and tokenizer_config.json; `file` is named in errors. */
export function buildTokenizer(json: Record<string, unknown>, config: Record<string, unknown>, file: string): TextTokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json, config);
  } catch (err) {
    throw new SlimtuneError(
      "E_TOKENIZER",
      `cannot build a tokenizer from it (${(err as Error).message}); it must be a Hugging Face tokenizers file — re-download it`,
      file,
    );
  }
  let maxId = -1;
  for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
  if (maxId < 0) throw new SlimtuneError("E_TOKENIZER", "has an empty vocabulary; re-download it", file);

  const idOf = (value: unknown) => {
    const name = tokenContent(value);
    return name === undefined ? undefined : tokenizer.token_to_id(name);
  };
  const eosTokenId = idOf(config.eos_token);
  const bosTokenId = idOf(config.bos_token);
  const addBos = config.add_bos_token;
  const encode = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids;
  const result: TextTokenizer = {
    encode,
    encodePrompt: (text) => {
      if (typeof addBos !== "boolean") return tokenizer.encode(text, { add_special_tokens: true }).ids;
      const ids = encode(text);
      return addBos && bosTokenId !== undefined ? [bosTokenId, ...ids] : ids;
    },
    decode: (ids) => tokenizer.decode(ids),
    vocabSize: maxId + 1,
  };
  if (eosTokenId !== undefined) result.eosTokenId = eosTokenId;
  if (bosTokenId !== undefined) result.bosTokenId = bosTokenId;
  return result;
}

/**
 * Every tokenizer file a Hugging Face model folder may carry (tokenizers' JSON, sentencepiece's
 * model, GPT-2-style vocab and merges) plus the configs that go with them. Every folder slimtune
 * writes copies these from its source, so the result tokenizes as the source did.
 */
export const TOKENIZER_FILES: readonly string[] = [
  "tokenizer.json",
  "tokenizer_config.json",
  "generation_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
];

/**
 * Copies the tokenizer files `sourceDir` has into `toDir` (nothing when the model was built in
 * memory); a model loaded from GGUF gets tokenizer.json and tokenizer_config.json rebuilt from it.
 */
export function copyTokenizerFiles(sourceDir: string | null, toDir: string): void {
  if (sourceDir === null) return;
  if (isGgufFile(sourceDir)) {
    const { json, config } = readTokenizerFiles(sourceDir);
    fsSync.writeFileSync(path.join(toDir, "tokenizer.json"), JSON.stringify(json));
    fsSync.writeFileSync(path.join(toDir, "tokenizer_config.json"), `${JSON.stringify(config, null, 2)}\n`);
    return;
  }
  for (const file of TOKENIZER_FILES) {
    const from = path.join(sourceDir, file);
    if (fsSync.existsSync(from)) fsSync.copyFileSync(from, path.join(toDir, file));
  }
}
