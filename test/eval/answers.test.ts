// Answers scored by exact match: normalisation, prompts tokenized as training tokenizes them, and
// greedy answers of ref-llama-5m compared with references (its own answer matches, another does not).

import { beforeAll, describe, expect, it } from "vitest";
import { ChatRenderer } from "../../src/data/chat-template.js";
import { parseInstructJsonl } from "../../src/data/instruct-records.js";
import { tokenizeRecords } from "../../src/data/sft-examples.js";
import { answerPrompt, defaultAnswerLength, exactMatch, normalizeAnswer } from "../../src/eval/answers.js";
import { Generator } from "../../src/eval/generate.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { methodScoring } from "../../src/methods/registry.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { refModelDir } from "../formats/helpers.js";

const none = new ChatRenderer(null);
const chat = parseInstructJsonl(
  JSON.stringify({ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }, { role: "user", content: "Name a colour." }, { role: "assistant", content: "Blue." }] }),
  "c.jsonl",
).records[0]!;

describe("exact match of generated answers", () => {
  let tok: TextTokenizer;
  beforeAll(async () => {
    tok = await loadTokenizer(refModelDir);
  });

  it("normalises case, whitespace and punctuation", () => {
    expect(normalizeAnswer("  The Movie was GOOD!!\n")).toBe("the movie was good");
    expect(normalizeAnswer("4.")).toBe(normalizeAnswer("4"));
    expect(normalizeAnswer("Éclair, s'il vous plaît")).toBe("éclair s il vous plaît");
    expect(normalizeAnswer("positive")).not.toBe(normalizeAnswer("negative"));
  });

  it("asks with exactly the tokens training puts before the last answer", () => {
    const p = answerPrompt(chat, none, tok);
    const e = tokenizeRecords([chat], none, tok, { seq: 256, trainOnPrompt: false, tooLong: "drop" }).examples[0]!;
    const lastAnswerStart = e.ids.length - tok.encode("Blue.").length - 1; // the answer, then EOS
    expect(p.ids).toEqual(Array.from(e.ids.subarray(0, lastAnswerStart)));
    expect(p.reference).toBe("Blue.");
    expect(defaultAnswerLength(p.referenceTokens)).toBeGreaterThan(p.referenceTokens);
  });

  it("scores greedy answers, overall and per template", async () => {
    const model = methodScoring(fullFineTuning(LlamaModel.load(refModelDir)));
    const generator = await Generator.create(model, tok, { threads: 1 });
    const records = parseInstructJsonl(
      [
        { prompt: "The capital of France is", completion: "x", template: "a" },
        { prompt: "Once upon a time", completion: "y", template: "b" },
      ]
        .map((r) => JSON.stringify(r))
        .join("\n"),
      "d.jsonl",
    ).records;
    const prompts = records.map((r) => answerPrompt(r, none, tok));
    const first = await exactMatch(generator, prompts, { maxNewTokens: 3 });
    expect(first.exactMatch).toBe(0);
    // The model's own greedy answer, with other case and punctuation, is a match; the other stays wrong.
    const own = `${first.answers[0]!.answer.toUpperCase()} !`;
    const second = await exactMatch(generator, [{ ...prompts[0]!, reference: own }, prompts[1]!], { maxNewTokens: 3 });
    await generator.release();
    expect(second.answers.map((a) => a.match)).toEqual([true, false]);
    expect(second.exactMatch).toBe(0.5);
    expect(second.perTemplate).toEqual({ a: { examples: 1, exactMatch: 1 }, b: { examples: 1, exactMatch: 0 } });
  });
});
