// Records to ids and loss masks with ref-llama-5m's tokenizer: loss on the answers only (every
// assistant turn), EOS after each answer unless the template wrote it, --train-on-prompt, and the
// policies for examples longer than --seq, each counted.

import { beforeAll, describe, expect, it } from "vitest";
import { ChatRenderer } from "../../src/data/chat-template.js";
import { parseInstructJsonl, type InstructRecord } from "../../src/data/instruct-records.js";
import { type SftTokenizeOptions, tokenizeRecords } from "../../src/data/sft-examples.js";
import { loadTokenizer, type TextTokenizer } from "../../src/formats/tokenizer.js";
import { expectSlimtuneError, refModelDir } from "../formats/helpers.js";

const records = (lines: object[]): InstructRecord[] => parseInstructJsonl(lines.map((l) => JSON.stringify(l)).join("\n"), "d.jsonl").records;
const base: SftTokenizeOptions = { seq: 256, trainOnPrompt: false, tooLong: "cut-prompt" };

describe("instruction examples", () => {
  let tok: TextTokenizer;
  let EOS: number;
  beforeAll(async () => {
    tok = await loadTokenizer(refModelDir);
    EOS = tok.eosTokenId!;
  });
  const none = () => new ChatRenderer(null);

  it("puts the loss on the completion and an appended EOS only", () => {
    const { examples, counts } = tokenizeRecords(records([{ prompt: "Is it good?\n", completion: "good" }]), none(), tok, base);
    const p = tok.encode("Is it good?\n");
    const c = tok.encode("good");
    expect(Array.from(examples[0]!.ids)).toEqual([...p, ...c, EOS]);
    expect(Array.from(examples[0]!.loss)).toEqual([...p.map(() => 0), ...c.map(() => 1), 1]);
    expect(counts).toMatchObject({ records: 1, examples: 1, lossTokens: c.length + 1, promptCut: 0, dropped: 0 });
    const all = tokenizeRecords(records([{ prompt: "Is it good?\n", completion: "good" }]), none(), tok, { ...base, trainOnPrompt: true }).examples[0]!;
    expect(Array.from(all.loss)).toEqual([0, ...Array(p.length + c.length).fill(1)]);
  });

  it("trains every assistant turn of a conversation, and an empty answer as EOS alone", () => {
    const { examples, counts } = tokenizeRecords(
      records([{ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }, { role: "user", content: "Bye" }, { role: "assistant", content: "" }] }]),
      none(),
      tok,
      base,
    );
    const e = examples[0]!;
    const trained = Array.from(e.ids).filter((_, i) => e.loss[i] === 1);
    expect(trained).toEqual([...tok.encode("Hello"), EOS, EOS]);
    expect(counts.emptyAnswers).toBe(1);
  });

  it("appends no second EOS when the template writes one", () => {
    const withEos = new ChatRenderer("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}", {
      eos_token: "<|endoftext|>",
    });
    const e = tokenizeRecords(records([{ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Yo" }] }]), withEos, tok, base).examples[0]!;
    const trained = Array.from(e.ids).filter((_, i) => e.loss[i] === 1);
    // trim_blocks (as transformers renders) removes the newline after {% endif %}: the answer ends at EOS.
    expect(trained).toEqual([...tok.encode("Yo"), EOS]);
    expect(Array.from(e.ids).filter((id) => id === EOS)).toHaveLength(1);
  });

  it("cuts a long prompt from the left keeping the answer, drops what cannot fit, and counts each", () => {
    const longPrompt = "word ".repeat(40);
    const r = records([
      { prompt: longPrompt, completion: "yes" },
      { prompt: "q", completion: "an answer much longer than the window allows ".repeat(3) },
      { prompt: "short", completion: "ok" },
    ]);
    const seq = 16;
    const { examples, counts } = tokenizeRecords(r, none(), tok, { ...base, seq });
    expect(counts).toMatchObject({ records: 3, examples: 2, promptCut: 1, dropped: 1 });
    const cut = examples[0]!;
    expect(cut.ids.length).toBe(seq + 1);
    expect(Array.from(cut.ids.slice(-tok.encode("yes").length - 1))).toEqual([...tok.encode("yes"), EOS]);
    expect(cut.loss[0]).toBe(0);
    const dropAll = tokenizeRecords(r, none(), tok, { ...base, seq, tooLong: "drop" }).counts;
    expect(dropAll).toMatchObject({ examples: 1, promptCut: 0, dropped: 2 });
    expectSlimtuneError(() => tokenizeRecords(r.slice(0, 2), none(), tok, { ...base, seq: 4, tooLong: "drop" }, "d.jsonl"), "E_DATA", "d.jsonl", "--seq 4", "cut-prompt");
  });

  it("splits long prompt-less text into windows that predict every token once", () => {
    const text = "one two three four five six seven eight nine ten eleven twelve thirteen";
    const ids = [...tok.encode(text), EOS];
    const seq = 5;
    const { examples, counts } = tokenizeRecords(records([{ text }]), none(), tok, { ...base, seq });
    expect(examples.every((e) => e.ids.length - 1 <= seq)).toBe(true);
    const predicted = examples.reduce((n, e) => n + e.loss.reduce((a, b) => a + b, 0), 0);
    expect(predicted).toBe(ids.length - 1);
    expect(Array.from(examples[1]!.ids.slice(0, 1))).toEqual(Array.from(examples[0]!.ids.slice(-1)));
    expect(counts.splitWindows).toBe(examples.length - 1);
  });

  it("names the line of a record the template refuses", () => {
    const strict = new ChatRenderer("{{ raise_exception('roles must alternate') }}");
    expectSlimtuneError(() => tokenizeRecords(records([{ messages: [{ role: "assistant", content: "a" }] }]), strict, tok, base, "c.jsonl"), "E_DATA", "c.jsonl", "line 1", "roles must alternate");
  });
});
