// Chat templates rendered through @huggingface/jinja: ChatML as SmolLM2 uses it and Llama 3's, with
// the rendered strings written out by hand; answer spans found by rendering prefixes; the default
// renderings for models without a template.

import path from "node:path";
import { describe, expect, it } from "vitest";
import { ChatRenderer, chatTemplateOf, readChatTemplateFile, templateTokensOf } from "../../src/data/chat-template.js";
import type { ChatMessage } from "../../src/data/instruct-records.js";
import { expectSlimtuneError } from "../formats/helpers.js";

const fixtures = path.resolve(new URL("../fixtures/chat-templates", import.meta.url).pathname);
const chatml = new ChatRenderer(readChatTemplateFile(path.join(fixtures, "chatml-smollm2.jinja")), { eos_token: "<|im_end|>" });
const llama3 = new ChatRenderer(readChatTemplateFile(path.join(fixtures, "llama3.jinja")), { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" });
const none = new ChatRenderer(null);

const twoTurns: ChatMessage[] = [
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "2+2?" },
  { role: "assistant", content: "4" },
];
const SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

describe("chat templates", () => {
  it("renders ChatML (SmolLM2) as transformers does, generation prompt included", () => {
    expect(chatml.render(twoTurns.slice(0, 1), true)).toBe(`${SMOL_SYSTEM}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n`);
    expect(chatml.render([{ role: "system", content: "Be brief." }, ...twoTurns.slice(0, 2)], false)).toBe(
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n",
    );
  });

  it("puts the loss on every assistant turn of a ChatML conversation, end marker included", () => {
    expect(chatml.segments({ format: "messages", messages: twoTurns })).toEqual([
      { text: `${SMOL_SYSTEM}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n`, train: false },
      { text: "Hello!<|im_end|>\n", train: true },
      { text: "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", train: false },
      { text: "4<|im_end|>\n", train: true },
    ]);
  });

  it("renders Llama 3 (BOS from bos_token, trimmed content) and splits it the same way", () => {
    const head = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    expect(llama3.render([{ role: "user", content: "  Hi \n" }], true)).toBe(`<|begin_of_text|>${head("user")}Hi<|eot_id|>${head("assistant")}`);
    expect(llama3.segments({ format: "messages", messages: twoTurns })).toEqual([
      { text: `<|begin_of_text|>${head("user")}Hi<|eot_id|>${head("assistant")}`, train: false },
      { text: "Hello!<|eot_id|>", train: true },
      { text: `${head("user")}2+2?<|eot_id|>${head("assistant")}`, train: false },
      { text: "4<|eot_id|>", train: true },
    ]);
    // Generation: everything before the last answer, with the generation prompt; the answer is the reference.
    expect(llama3.promptAndReference({ format: "messages", messages: twoTurns })).toEqual({
      prompt: `<|begin_of_text|>${head("user")}Hi<|eot_id|>${head("assistant")}Hello!<|eot_id|>${head("user")}2+2?<|eot_id|>${head("assistant")}`,
      reference: "4",
    });
  });

  it("renders Alpaca records as one user and one assistant turn when the model has a template", () => {
    expect(chatml.segments({ format: "alpaca", instruction: "Add.", input: "2 and 3", output: "5" })).toEqual([
      { text: `${SMOL_SYSTEM}<|im_start|>user\nAdd.\n\n2 and 3<|im_end|>\n<|im_start|>assistant\n`, train: false },
      { text: "5<|im_end|>\n", train: true },
    ]);
  });

  it("refuses a template that rewrites earlier turns, and one that raises", () => {
    const lastOnly = new ChatRenderer("{{ messages[-1]['content'] }}");
    expectSlimtuneError(() => lastOnly.segments({ format: "messages", messages: twoTurns }), "E_DATA", "prefix", "--chat-template");
    const strict = new ChatRenderer("{% if messages[0]['role'] != 'system' %}{{ raise_exception('a system message must come first') }}{% endif %}ok");
    expectSlimtuneError(() => strict.segments({ format: "messages", messages: twoTurns }), "E_DATA", "a system message must come first");
    expectSlimtuneError(() => new ChatRenderer("{% for %}", {}, "t.jinja"), "E_DATA", "t.jinja", "Jinja");
  });

  it("has a documented default per format without a template", () => {
    expect(none.segments({ format: "prompt-completion", prompt: "Q: 1+1\nA:", completion: " 2" })).toEqual([
      { text: "Q: 1+1\nA:", train: false },
      { text: " 2", train: true },
    ]);
    expect(none.segments({ format: "alpaca", instruction: "Add.", input: "", output: "5" })).toEqual([
      { text: "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Response:\n", train: false },
      { text: "5", train: true },
    ]);
    expect(none.segments({ format: "alpaca", instruction: "Add.", input: "2, 3", output: "5" })[0]!.text).toContain("### Input:\n2, 3\n\n### Response:\n");
    expect(none.segments({ format: "messages", messages: [{ role: "system", content: "S" }, ...twoTurns] })).toEqual([
      { text: "System: S\nUser: Hi\nAssistant: ", train: false },
      { text: "Hello!", train: true },
      { text: "\nUser: 2+2?\nAssistant: ", train: false },
      { text: "4", train: true },
    ]);
    expect(none.promptAndReference({ format: "messages", messages: twoTurns })).toEqual({ prompt: "User: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant: ", reference: "4" });
    expect(none.segments({ format: "text", text: "all of it" })).toEqual([{ text: "all of it", train: true }]);
  });

  it("reads chat_template from tokenizer_config.json (a string or a named list)", () => {
    expect(chatTemplateOf({}, "c.json")).toBeNull();
    expect(chatTemplateOf({ chat_template: "x" }, "c.json")).toBe("x");
    expect(chatTemplateOf({ chat_template: [{ name: "tool_use", template: "t" }, { name: "default", template: "d" }] }, "c.json")).toBe("d");
    expectSlimtuneError(() => chatTemplateOf({ chat_template: 5 }, "c.json"), "E_TOKENIZER", "c.json", "--chat-template");
    expect(templateTokensOf({ bos_token: { content: "<s>" }, eos_token: "</s>", pad_token: null })).toEqual({ bos_token: "<s>", eos_token: "</s>" });
  });
});
