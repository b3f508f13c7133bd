// A chat session keeps the conversation: each reply joins the history and is part of the next
// prompt, /reset keeps only the system message, and an over-long history loses its oldest exchanges.

import { beforeAll, describe, expect, it } from "vitest";
import { ChatRenderer } from "../../src/data/chat-template.js";
import { ChatSession } from "../../src/eval/chat-session.js";
import { Generator } from "../../src/eval/generate.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { fullFineTuning } from "../../src/methods/full/index.js";
import { methodScoring } from "../../src/methods/registry.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { refModelDir } from "../formats/helpers.js";

describe("chat session", () => {
  let generator: Generator;
  let session: ChatSession;
  beforeAll(async () => {
    const tok = await loadTokenizer(refModelDir);
    generator = await Generator.create(methodScoring(fullFineTuning(LlamaModel.load(refModelDir))), tok, { threads: 1 });
    session = new ChatSession(generator, new ChatRenderer(null), tok, "Be brief.");
    return () => generator.release();
  });

  it("answers turn after turn with the history in the prompt", async () => {
    const first = await session.say("Hello", { maxNewTokens: 6, temperature: 0 });
    expect(session.history.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(session.history[2]!.content).toBe(first.text.trim());
    const second = await session.say("And then?", { maxNewTokens: 6, temperature: 0 });
    const prompt = generator.tokenizer.decode(second.promptIds);
    expect(prompt).toContain(`System: Be brief.\nUser: Hello\nAssistant: ${first.text.trim()}`);
    expect(prompt.endsWith("User: And then?\nAssistant: ")).toBe(true);
    session.reset();
    expect(session.history).toEqual([{ role: "system", content: "Be brief." }]);
  });

  it("drops the oldest exchanges, not the system message, when the context is full", async () => {
    session.reset();
    const long = "word ".repeat(300);
    session.history.push({ role: "user", content: long }, { role: "assistant", content: long }, { role: "user", content: long });
    await session.say("Short question?", { maxNewTokens: 400, temperature: 0 });
    expect(session.history[0]).toEqual({ role: "system", content: "Be brief." });
    expect(session.history.length).toBeLessThan(6);
    expect(session.history[session.history.length - 2]).toEqual({ role: "user", content: "Short question?" });
  });
});
