// The run's instruction data: the chat template from tokenizer_config.json (or --chat-template,
// which wins), a held-out sample split by record so no held-out line is trained on, and the
// summary's counts.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { chatRendererFor } from "../../src/data/chat-template.js";
import { describeSftData, loadSftData } from "../../src/recipes/sft-data.js";
import { loadTaskData } from "../../src/recipes/task-data.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { expectSlimtuneError, refModelDir, tempDir } from "../formats/helpers.js";

const tmp = tempDir("sft-data");
const fixtures = path.resolve(new URL("../fixtures/chat-templates", import.meta.url).pathname);

describe("sft data for a run", () => {
  it("takes the model's chat_template, or --chat-template over it", () => {
    const dir = path.join(tmp, "chat-model");
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(refModelDir, "tokenizer.json"), path.join(dir, "tokenizer.json"));
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<|endoftext|>", chat_template: "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}" }));
    const own = chatRendererFor(dir);
    expect(own.source).toBe(path.join(dir, "tokenizer_config.json"));
    expect(own.renderer.render([{ role: "user", content: "hi" }], true)).toBe("<user>hi<|endoftext|><assistant>");
    const file = path.join(fixtures, "llama3.jinja");
    const given = chatRendererFor(dir, file);
    expect(given.source).toBe(file);
    // Llama 3's template starts with bos_token, which this tokenizer_config.json does not define.
    expectSlimtuneError(() => given.renderer.render([{ role: "user", content: "hi" }], false), "E_DATA", "llama3.jinja", "eos_token");
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" }));
    expect(chatRendererFor(dir, file).renderer.render([{ role: "user", content: "hi" }], false)).toBe("<|endoftext|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
    expect(chatRendererFor(refModelDir).renderer.hasTemplate).toBe(false);
  });

  it("holds out a seeded sample of records, disjoint from training, and counts both", async () => {
    const data = path.join(tmp, "pc.jsonl");
    fs.writeFileSync(data, Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Q${i}?`, completion: ` A${i}` })).join("\n"));
    const tok = await loadTokenizer(refModelDir);
    const o = { dataFile: data, trainOnPrompt: false, tooLong: "cut-prompt" as const, seq: 64, heldOut: 0.25, seed: 1 };
    const a = loadSftData(refModelDir, tok, o);
    expect(a.heldOut).toHaveLength(10);
    expect(a.train).toHaveLength(30);
    const held = new Set(a.heldOut.map((e) => e.line));
    expect(a.train.some((e) => held.has(e.line))).toBe(false);
    expect(loadSftData(refModelDir, tok, o).heldOut.map((e) => e.line)).toEqual(a.heldOut.map((e) => e.line));
    expect(loadSftData(refModelDir, tok, { ...o, seed: 2 }).heldOut.map((e) => e.line)).not.toEqual(a.heldOut.map((e) => e.line));
    const lines = describeSftData(a.summary, 64);
    expect(lines[1]).toContain("30 records → 30 examples");
    expect(lines[2]).toContain("held-out 25 % sample");
    expectSlimtuneError(() => loadSftData(refModelDir, tok, { ...o, heldOut: 0.999 }), "E_DATA", "--held-out");
    // Recipes that recover on task data (pruning-adapter, qpruner, mixed-precision trials) train JSONL the same way.
    const recovery = loadTaskData(tok, { task: "lm", dataFile: data, batch: 2, seq: 64, maxLen: 64, heldOut: 0.25, evalTokens: 1024, seed: 1, modelSource: refModelDir });
    expect(recovery.task(LlamaModel.load(refModelDir).config).kind).toBe("sft");
    expect(recovery.scoredOn).toContain("answers");
  });
});
