// JSONL instruction data: the format comes from the first record's fields, the real files in
// ../shared/data/instructions read whole, and every record that does not fit is E_DATA naming the
// file, the line and the field.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { answerIsEmpty, parseInstructJsonl, readInstructFile } from "../../src/data/instruct-records.js";
import { expectSlimtuneError, sharedDir, tempDir } from "../formats/helpers.js";

const dir = path.join(sharedDir, "data/instructions");
const parse = (text: string, format?: "text" | "prompt-completion" | "alpaca" | "messages") => parseInstructJsonl(text, "d.jsonl", format ? { format } : {});

describe("instruction records", () => {
  it("reads the shared files in each format, with T0's template names", () => {
    const train = readInstructFile(path.join(dir, "t0-mix-train.jsonl"));
    expect(train.format).toBe("prompt-completion");
    expect(train.records).toHaveLength(13395);
    expect(train.records[0]!.template).toBe("imdb_Reviewer_Opinion_bad_good_choices");
    // Empty completions are real (TREC prompts whose label was lost) and accepted: the answer is EOS alone.
    expect(train.records.filter((r) => answerIsEmpty(r))).toHaveLength(1264);
    expect(readInstructFile(path.join(dir, "t0-mix-dev.jsonl")).records).toHaveLength(1489);
    const alpaca = readInstructFile(path.join(dir, "seed-tasks-alpaca.jsonl"));
    expect(alpaca.format).toBe("alpaca");
    expect(alpaca.records).toHaveLength(175);
    const chat = readInstructFile(path.join(dir, "seed-tasks-chat.jsonl"));
    expect(chat.format).toBe("messages");
    expect(chat.records).toHaveLength(175);
    const first = chat.records[0]!;
    expect(first.format === "messages" && first.messages.map((m) => m.role)).toEqual(["user", "assistant"]);
  });

  it("detects each format from the fields and skips blank lines", () => {
    expect(parse('{"text":"a"}\n\n{"text":"b"}\n').records.map((r) => r.line)).toEqual([1, 3]);
    expect(parse('{"prompt":"p","completion":"c"}').format).toBe("prompt-completion");
    expect(parse('{"instruction":"i","output":"o"}').records[0]).toMatchObject({ format: "alpaca", input: "" });
    expect(parse('{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}').format).toBe("messages");
  });

  it("names the file, the line and the field of a record that does not fit", () => {
    expectSlimtuneError(() => parse('{"prompt":"p","completion":"c"}\n{"prompt":"p"}'), "E_DATA", "d.jsonl", "line 2", '"completion"');
    expectSlimtuneError(() => parse('{"prompt":"p","completion":3}'), "E_DATA", "line 1", '"completion"', "string");
    expectSlimtuneError(() => parse('{"text":"a"}\n{"text":'), "E_DATA", "line 2", "not valid JSON");
    expectSlimtuneError(() => parse('[1,2]'), "E_DATA", "line 1", "not a JSON object");
    expectSlimtuneError(() => parse('{"question":"q","answer":"a"}'), "E_DATA", "line 1", "question, answer", "--data-format");
    expectSlimtuneError(() => parse('{"messages":[{"role":"user","content":"u"},{"role":"bot","content":"a"}]}'), "E_DATA", "line 1", "messages[1].role", "bot");
    expectSlimtuneError(() => parse('{"messages":[{"role":"user","content":"u"}]}'), "E_DATA", "line 1", "no assistant message");
    expectSlimtuneError(() => parse('{"messages":[{"role":"assistant","content":null}]}'), "E_DATA", "messages[0].content");
    expectSlimtuneError(() => parse('{"text":"a","template":7}'), "E_DATA", '"template"');
    expectSlimtuneError(() => parse('{"text":"   "}'), "E_DATA", '"text"', "empty");
    expectSlimtuneError(() => parse("\n\n"), "E_DATA", "no records");
    // A named format holds every record to it, the first included.
    expectSlimtuneError(() => parse('{"text":"a"}', "alpaca"), "E_DATA", "line 1", '"instruction"');
  });

  it("refuses what is not a regular file", () => {
    const tmp = tempDir("jsonl");
    expectSlimtuneError(() => readInstructFile(tmp), "E_IO", "folder");
    expectSlimtuneError(() => readInstructFile(path.join(tmp, "missing.jsonl")), "E_NOT_FOUND");
    fs.writeFileSync(path.join(tmp, "ok.jsonl"), '{"text":"x"}\n');
    expect(readInstructFile(path.join(tmp, "ok.jsonl")).records).toHaveLength(1);
  });
});
