// Pruning, QPruner and Pruning-Adapter measure importance on instruction data too: a .jsonl file is
// the stream of its examples rendered and tokenized as finetune --task sft does (prompt and answer).

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ChatRenderer } from "../../src/data/chat-template.js";
import { readInstructFile } from "../../src/data/instruct-records.js";
import { tokenizeRecords } from "../../src/data/sft-examples.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { taskSource } from "../../src/prune/task-source.js";
import { refModelDir, tempDir } from "../formats/helpers.js";

describe("importance data from JSONL", () => {
  it("is the examples' tokens one after another", async () => {
    const file = path.join(tempDir("prune-jsonl"), "d.jsonl");
    fs.writeFileSync(file, [JSON.stringify({ instruction: "Add one.", input: "2", output: "3" }), JSON.stringify({ instruction: "Name a colour.", output: "Blue" })].join("\n"));
    const tok = await loadTokenizer(refModelDir);
    const source = await taskSource(LlamaModel.load(refModelDir), tok, { task: "lm", dataFile: file, batch: 2, seq: 64, maxLen: 64, seed: 0, modelSource: refModelDir });
    const { examples } = tokenizeRecords(readInstructFile(file).records, new ChatRenderer(null), tok, { seq: 64, trainOnPrompt: true, tooLong: "cut-prompt" });
    expect(source.kind).toBe("lm");
    expect(Array.from((source as { tokens: Int32Array }).tokens)).toEqual(examples.flatMap((e) => Array.from(e.ids)));
    expect(tok.decode(Array.from((source as { tokens: Int32Array }).tokens))).toContain("### Instruction:\nName a colour.\n\n### Response:\nBlue");
  });
});
