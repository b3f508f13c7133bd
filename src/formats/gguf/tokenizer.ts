// A byte-level BPE tokenizer between tokenizer.json and GGUF's tokenizer.ggml.* keys (formats.md
// §3.7): tokens by id, token types, merges as "left right", the pre-tokenizer by llama.cpp's name,
// BOS/EOS ids and whether BOS is added. The reverse builds a tokenizer.json that
// @huggingface/tokenizers (and transformers) load, so a GGUF model tokenizes as llama.cpp does.

import { SlimtuneError, quote } from "../../core/errors.js";
import { shownJson } from "../../core/json.js";
import { CONFIG_LIMITS } from "../hf-config.js";
import type { GgufValue } from "./writer.js";
import type { GgufEntry } from "./reader.js";

type Json = Record<string, unknown>;

// The split regexes of LLaMA 3 and Qwen2 tokenizers (llama.cpp "llama-bpe" and "qwen2"); "gpt-2" is
// ByteLevel with its built-in GPT-2 regex.
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean): Json => ({ type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const split = (regex: string): Json => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });

/** llama.cpp's pre-tokenizer names and the tokenizer.json pre_tokenizer each stands for. */
const PRE_TOKENIZERS: Record<string, Json> = {
  "gpt-2": byteLevel(true),
  smollm: { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, byteLevel(true)] },
  "llama-bpe": { type: "Sequence", pretokenizers: [split(LLAMA3_SPLIT), byteLevel(false)] },
  qwen2: { type: "Sequence", pretokenizers: [split(QWEN2_SPLIT), byteLevel(false)] },
};

/** The fields that decide how text splits, keys sorted; trim_offsets changes only offsets, not ids. */
function splitting(pre: unknown): string {
  return JSON.stringify(pre, (key, value) => {
    if (key === "trim_offsets") return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value as Json).sort(([a], [b]) => (a < b ? -1 : 1)));
  });
}

function preTokenizerName(pre: unknown, file: string): string {
  for (const [name, json] of Object.entries(PRE_TOKENIZERS)) if (splitting(json) === splitting(pre)) return name;
  throw new SlimtuneError(
    "E_TOKENIZER",
    `its pre_tokenizer ${JSON.stringify(pre).slice(0, 200)} matches none of the byte-level splits slimtune maps to llama.cpp (${Object.keys(PRE_TOKENIZERS).join(", ")}); llama.cpp would tokenize this model differently`,
    file,
  );
}

export interface TokenizerSource {
  /** tokenizer.json */
  json: Json;
  /** tokenizer_config.json (may be empty) */
  config: Json;
  file: string;
}

/** tokenizer.ggml.* keys for a byte-level BPE tokenizer.json; `vocabSize` rows of the embedding. */
export function ggufTokenizerKeys(src: TokenizerSource, vocabSize: number, ids: { bos?: number; eos?: number }): Array<[string, GgufValue]> {
  const model = src.json.model as Json | undefined;
  if (!model || model.type !== "BPE" || typeof model.vocab !== "object" || !Array.isArray(model.merges)) {
    throw new SlimtuneError("E_TOKENIZER", "is not a byte-level BPE tokenizer (model.type BPE with vocab and merges); slimtune writes GGUF tokenizers of that kind only", src.file);
  }
  const pre = preTokenizerName(src.json.pre_tokenizer, src.file);
  const tokens: string[] = Array.from({ length: vocabSize }, (_, i) => `[PAD${i}]`);
  const types: number[] = new Array<number>(vocabSize).fill(5); // unused until a token claims the id
  const place = (text: string, id: number, type: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new SlimtuneError("E_TOKENIZER", `token ${quote(text)} has id ${id}, outside the model's ${vocabSize} embedding rows`, src.file);
    }
    tokens[id] = text;
    types[id] = type;
  };
  for (const [text, id] of Object.entries(model.vocab as Record<string, number>)) place(text, id, 1);
  for (const t of (src.json.added_tokens as Json[] | undefined) ?? []) place(t.content as string, t.id as number, t.special ? 3 : 4);
  if (new Set(tokens).size !== tokens.length) throw new SlimtuneError("E_TOKENIZER", "has two ids with the same token text; llama.cpp refuses duplicate tokens", src.file);
  // Merges are "left right"; the pair form joins with a space and escapes spaces inside a part as Ġ.
  const merges = (model.merges as unknown[]).map((m) =>
    Array.isArray(m) ? (m as string[]).map((part) => part.replaceAll(" ", "\u0120")).join(" ") : String(m),
  );
  const addBos = src.config.add_bos_token === true;
  const out: Array<[string, GgufValue]> = [
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: pre }],
    ["tokenizer.ggml.tokens", { type: "array", of: "string", values: tokens }],
    ["tokenizer.ggml.token_type", { type: "array", of: "i32", values: types }],
    ["tokenizer.ggml.merges", { type: "array", of: "string", values: merges }],
  ];
  if (ids.bos !== undefined) out.push(["tokenizer.ggml.bos_token_id", { type: "u32", value: ids.bos }]);
  if (ids.eos !== undefined) out.push(["tokenizer.ggml.eos_token_id", { type: "u32", value: ids.eos }]);
  out.push(["tokenizer.ggml.add_bos_token", { type: "bool", value: addBos }]);
  out.push(["tokenizer.ggml.add_eos_token", { type: "bool", value: false }]);
  const template = src.config.chat_template;
  if (typeof template === "string" && template) out.push(["tokenizer.chat_template", { type: "string", value: template }]);
  return out;
}

/** tokenizer.json and tokenizer_config.json rebuilt from a GGUF file's tokenizer.ggml.* keys. */
export function tokenizerFromGguf(meta: ReadonlyMap<string, GgufEntry>, file: string): { json: Json; config: Json } {
  const get = (key: string) => meta.get(key)?.value;
  const fail = (why: string): never => {
    throw new SlimtuneError("E_GGUF", why, file);
  };
  if (get("tokenizer.ggml.model") !== "gpt2") {
    fail(`tokenizer.ggml.model is ${shownJson(get("tokenizer.ggml.model"))}; slimtune reads byte-level BPE ("gpt2") tokenizers from GGUF`);
  }
  const pre = String(get("tokenizer.ggml.pre") ?? "gpt-2");
  const preTokenizer = PRE_TOKENIZERS[pre] ?? fail(`tokenizer.ggml.pre is ${quote(pre)}; slimtune knows ${Object.keys(PRE_TOKENIZERS).join(", ")}`);
  const tokens = get("tokenizer.ggml.tokens");
  const merges = get("tokenizer.ggml.merges");
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) return fail("tokenizer.ggml.tokens is missing or not an array of strings");
  if (!Array.isArray(merges) || !merges.every((t) => typeof t === "string")) return fail("tokenizer.ggml.merges is missing or not an array of strings");
  if (tokens.length > CONFIG_LIMITS.vocab_size) fail(`tokenizer.ggml.tokens has ${tokens.length} tokens, more than ${CONFIG_LIMITS.vocab_size}; the file is corrupt`);
  const typesValue = get("tokenizer.ggml.token_type");
  const types = Array.isArray(typesValue) ? typesValue.map(Number) : [];
  const vocab: Record<string, number> = {};
  const added: Json[] = [];
  (tokens as string[]).forEach((text, id) => {
    const type = types[id] ?? 1;
    if (type === 3 || type === 4) added.push({ id, content: text, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === 3 });
    if (type !== 5) vocab[text] = id;
  });
  const tokenAt = (key: string) => {
    const id = get(key);
    return typeof id === "number" && id >= 0 && id < tokens.length ? (tokens[id] as string) : undefined;
  };
  const bos = tokenAt("tokenizer.ggml.bos_token_id");
  const eos = tokenAt("tokenizer.ggml.eos_token_id");
  const addBos = get("tokenizer.ggml.add_bos_token") === true;
  const json: Json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre === "llama-bpe", vocab, merges },
  };
  const config: Json = { add_bos_token: addBos, add_eos_token: false, clean_up_tokenization_spaces: false, tokenizer_class: "PreTrainedTokenizerFast" };
  if (bos !== undefined) config.bos_token = bos;
  if (eos !== undefined) config.eos_token = eos;
  const template = get("tokenizer.chat_template");
  if (typeof template === "string") config.chat_template = template;
  return { json, config };
}
