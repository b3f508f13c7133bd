// Loads a model folder's tokenizer.json with @huggingface/tokenizers behind a small text-in, ids-out interface.

import fsSync from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { SlimtuneError, quote } from "../core/errors.js";
import { withIo } from "../core/io.js";
import { isJsonObject, parseJsonText, readJsonObject, readJsonText, shownJson } from "../core/json.js";
import { CONFIG_LIMITS } from "./hf-config.js";
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

/** tokenizer.json files run to tens of megabytes (Gemma's is 33 MB); anything far larger is not one. */
const MAX_TOKENIZER_BYTES = 256 << 20;

/** A tokenizer JSON file as an object, or undefined when an optional one is absent; every failure is E_TOKENIZER (or E_IO). */
function readTokenizerJson(file: string, required: boolean): Record<string, unknown> | undefined {
  const fix = `copy ${path.basename(file)} from the original Hugging Face model into the folder`;
  const st = withIo(file, `read ${path.basename(file)}`, () => fsSync.statSync(file, { throwIfNoEntry: false }));
  if (!st) {
    if (!required) return undefined;
    throw new SlimtuneError("E_TOKENIZER", `does not exist; ${fix}`, file);
  }
  const text = readJsonText(file, { code: "E_TOKENIZER", missingFix: fix, invalidFix: "re-download it", maxBytes: MAX_TOKENIZER_BYTES });
  const json = parseJsonText(text, { file, code: "E_TOKENIZER", invalidFix: "re-download it" });
  if (!isJsonObject(json)) throw new SlimtuneError("E_TOKENIZER", "must be a JSON object; re-download it", file);
  return json;
}

function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * Loads `<modelDir>/tokenizer.json` (and tokenizer_config.json when present), or a GGUF file's
 * tokenizer, and refuses one whose ids run past the model's embedding rows (config.json's
 * vocab_size, or the GGUF's token_embd rows): such an id would crash the runtime's Gather.
 */
export async function loadTokenizer(modelDir: string): Promise<TextTokenizer> {
  if (isGgufFile(modelDir)) {
    const header = readGgufHeader(modelDir);
    const { json, config } = tokenizerFromGguf(header.metadata, modelDir);
    const tokenizer = buildTokenizer(json, config, modelDir);
    const rows = header.tensors.get("token_embd.weight")?.ne[1];
    if (rows !== undefined) checkTokenizerFitsModel(tokenizer.vocabSize, rows, modelDir, `${modelDir} (token_embd.weight)`);
    return tokenizer;
  }
  const file = path.join(modelDir, "tokenizer.json");
  const json = readTokenizerJson(file, true)!;
  const config = readTokenizerJson(path.join(modelDir, "tokenizer_config.json"), false) ?? {};
  const tokenizer = buildTokenizer(json, config, file);
  const modelVocab = declaredVocabSize(path.join(modelDir, "config.json"));
  if (modelVocab !== undefined) checkTokenizerFitsModel(tokenizer.vocabSize, modelVocab, file, path.join(modelDir, "config.json"));
  return tokenizer;
}

/** config.json's vocab_size when the file exists and declares one; the model loader reports a broken config. */
function declaredVocabSize(configFile: string): number | undefined {
  try {
    const v = readJsonObject(configFile, { missingFix: "" }).vocab_size;
    return typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * E_TOKENIZER when a tokenizer has ids at or past the model's `modelVocab` embedding rows (a
 * tokenizer from a larger model, or tokens added without resizing the embedding).
 */
export function checkTokenizerFitsModel(tokenizerVocab: number, modelVocab: number, tokenizerFile: string, modelFile: string): void {
  if (tokenizerVocab <= modelVocab) return;
  throw new SlimtuneError(
    "E_TOKENIZER",
    `has token ids up to ${tokenizerVocab - 1}, but the model (${modelFile}) has only ${modelVocab} embedding rows (vocab_size); ids ${modelVocab}…${tokenizerVocab - 1} have no embedding — use the tokenizer the model was trained with, or resize the embedding`,
    tokenizerFile,
  );
}

/** True when `p` names a GGUF file (models can be loaded from one). */
export function isGgufFile(p: string): boolean {
  return p.toLowerCase().endsWith(".gguf") && (fsSync.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false);
}

/** tokenizer.json and tokenizer_config.json of a model folder or GGUF file, as JSON. */
export function readTokenizerFiles(source: string): { json: Record<string, unknown>; config: Record<string, unknown>; file: string } {
  if (isGgufFile(source)) return { ...tokenizerFromGguf(readGgufHeader(source).metadata, source), file: source };
  const file = path.join(source, "tokenizer.json");
  return { json: readTokenizerJson(file, true)!, config: readTokenizerJson(path.join(source, "tokenizer_config.json"), false) ?? {}, file };
}

/** A tokenizer from the contents of tokenizer.json and tokenizer_config.json; `file` is named in errors. */
export function buildTokenizer(json: Record<string, unknown>, config: Record<string, unknown>, file: string): TextTokenizer {
  checkTokenIds(json, file);
  let tokenizer: Tokenizer;
  let maxId = -1;
  try {
    tokenizer = new Tokenizer(json, config);
    for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    // A file the library accepts can still fail on its first text (a broken normalizer or regex): fail here, not mid-run.
    tokenizer.decode(tokenizer.encode(SMOKE_TEXT, { add_special_tokens: true }).ids);
  } catch (err) {
    throw new SlimtuneError(
      "E_TOKENIZER",
      `cannot build a tokenizer from it (${String((err as Error)?.message ?? err).slice(0, 200)}); it must be a Hugging Face tokenizers file — re-download it`,
      file,
    );
  }
  if (maxId < 0) throw new SlimtuneError("E_TOKENIZER", "has an empty vocabulary; re-download it", file);
  if (maxId >= MAX_VOCAB) throw new SlimtuneError("E_TOKENIZER", `has token id ${maxId}; ids must stay below ${MAX_VOCAB} — re-download it`, file);

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

const SMOKE_TEXT = "Hello, world! 123\n";
/** Token ids must stay below the largest vocabulary a config may declare. */
const MAX_VOCAB = CONFIG_LIMITS.vocab_size;

/**
 * Checks the ids in tokenizer.json before the library sees them: the library sizes its tables by
 * the largest id, so one id of 1e9 costs a minute and gigabytes. Every id in model.vocab and
 * added_tokens must be an integer in [0, MAX_VOCAB).
 */
function checkTokenIds(json: Record<string, unknown>, file: string): void {
  const bad = (where: string, id: unknown): never => {
    throw new SlimtuneError("E_TOKENIZER", `${where} has id ${shownJson(id)}; token ids are integers from 0 to ${MAX_VOCAB - 1} — re-download it`, file);
  };
  const model = json.model;
  if (!isJsonObject(model)) throw new SlimtuneError("E_TOKENIZER", `"model" is ${shownJson(model)}; expected the tokenizer model object — re-download it`, file);
  const vocab = model.vocab;
  if (isJsonObject(vocab)) {
    const entries = Object.entries(vocab);
    if (entries.length > MAX_VOCAB) throw new SlimtuneError("E_TOKENIZER", `model.vocab has ${entries.length} tokens, more than ${MAX_VOCAB} — re-download it`, file);
    for (const [token, id] of entries) if (!(Number.isInteger(id) && (id as number) >= 0 && (id as number) < MAX_VOCAB)) bad(`model.vocab token ${quote(token)}`, id);
  } else if (Array.isArray(vocab) && vocab.length > MAX_VOCAB) {
    throw new SlimtuneError("E_TOKENIZER", `model.vocab has ${vocab.length} pieces, more than ${MAX_VOCAB} — re-download it`, file);
  }
  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) throw new SlimtuneError("E_TOKENIZER", `"added_tokens" is ${shownJson(added)}; expected a list — re-download it`, file);
    if (added.length > MAX_VOCAB) throw new SlimtuneError("E_TOKENIZER", `has ${added.length} added tokens, more than ${MAX_VOCAB} — re-download it`, file);
    for (const [i, t] of added.entries()) {
      const id = isJsonObject(t) ? t.id : undefined;
      if (!(Number.isInteger(id) && (id as number) >= 0 && (id as number) < MAX_VOCAB)) bad(`added_tokens[${i}]`, id);
    }
  }
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
