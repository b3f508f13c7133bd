// Tests for the tokenizer wrapper: the WikiText-2 token count slimtune's perplexity protocol relies on, and errors.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { refModelDir, tempDir, wikitextTest } from "./helpers.js";

const dir = tempDir("tokenizer");

describe("loadTokenizer on ref-llama-5m", () => {
  it("encodes the whole WikiText-2 test file to exactly 449,010 tokens, no BOS", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    const text = fs.readFileSync(wikitextTest, "utf8");
    const start = performance.now();
    const ids = tokenizer.encode(text);
    const seconds = (performance.now() - start) / 1000;
    console.log(`tokenized ${text.length} chars → ${ids.length} tokens in ${seconds.toFixed(2)} s`);
    expect(ids.length).toBe(449_010);
    expect(ids[0]).not.toBe(tokenizer.eosTokenId);
    expect(ids.every((id) => id >= 0 && id < tokenizer.vocabSize)).toBe(true);
  });

  it("has vocab 4096, eos <|endoftext|> = 4095, and decodes what it encodes", async () => {
    const tokenizer = await loadTokenizer(refModelDir);
    expect(tokenizer.vocabSize).toBe(4096);
    expect(tokenizer.eosTokenId).toBe(4095);
    const text = " The tower is 324 metres tall.\n = Robert <unk> = \n";
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    expect(tokenizer.encode("")).toEqual([]);
  });
});

describe("loadTokenizer errors → E_TOKENIZER naming tokenizer.json", () => {
  it.each<[string, string | undefined]>([
    ["missing", undefined],
    ["not JSON", "{ nope"],
    ["not a tokenizer", JSON.stringify({ model: { type: "NoSuchModel" } })],
  ])("%s", async (label, content) => {
    const folder = path.join(dir, label.replaceAll(" ", "-"));
    fs.mkdirSync(folder);
    if (content !== undefined) fs.writeFileSync(path.join(folder, "tokenizer.json"), content);
    const err = await loadTokenizer(folder).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlimtuneError);
    expect((err as SlimtuneError).code).toBe("E_TOKENIZER");
    expect((err as SlimtuneError).message).toContain(path.join(folder, "tokenizer.json"));
  });
});
