// `eval --task generate` on a 4-bit folder of ref-llama-5m decodes as `generate` does: its
// embedding/LM head tables built from the file (cli/generation-model.ts), never the float
// embedding. Its answers and exact match equal those of the path it had before — a Generator on
// the loaded model, with the tables quantized from the loaded floats for --head-bits 4 and 8, and
// the loaded model as it was for --head-bits float — and the head is named in --json. --head-bits
// is refused with a width the tables lack, and with --task lm, which would not score that head.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { evalGenerate } from "../../src/cli/eval-generate.js";
import { ChatRenderer } from "../../src/data/chat-template.js";
import { readInstructFile } from "../../src/data/instruct-records.js";
import { answerPrompt, exactMatch } from "../../src/eval/answers.js";
import { Generator } from "../../src/eval/generate.js";
import { type HeadBits, withQuantizedHead } from "../../src/eval/head-tables.js";
import { generationScoring } from "../../src/export/deploy.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { loadBase } from "../../src/models/load.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, SHARED, scratchDir } from "../helpers/paths.js";

const DATA = path.join(SHARED, "data", "instructions", "t0-mix-dev.jsonl");
const EXAMPLES = 4;
const NEW_TOKENS = 8;
const EMBED = "model.embed_tokens.weight";

// loadBase, observed: which loading path each run took (the real loader runs).
vi.mock("../../src/models/load.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../src/models/load.js")>();
  return { ...real, loadBase: vi.fn(real.loadBase) };
});

interface EvalJson {
  head: string;
  exact_match: number;
  answers: { line: number; answer: string; match: boolean; stopReason: string }[];
}

/** evalGenerate with --json, on one thread, its stdout parsed. */
async function evalJson(dir: string, headBits: string | undefined): Promise<EvalJson> {
  let out = "";
  const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await evalGenerate({ json: true, "max-examples": String(EXAMPLES), "max-new-tokens": String(NEW_TOKENS), ...(headBits ? { "head-bits": headBits } : {}) }, dir, DATA, 1);
  } finally {
    write.mockRestore();
  }
  return JSON.parse(out) as EvalJson;
}

/** What eval --task generate answered before it shared generate's loading: the model loaded whole. */
async function answersBefore(dir: string, bits: HeadBits) {
  const loaded = loadBase(dir);
  const base = bits === "float" ? loaded : withQuantizedHead(loaded, bits).base;
  const tokenizer = await loadTokenizer(dir);
  const renderer = new ChatRenderer(null);
  const prompts = readInstructFile(DATA).records.slice(0, EXAMPLES).map((r) => answerPrompt(r, renderer, tokenizer));
  const generator = await Generator.create(generationScoring(base), tokenizer, { threads: 1 });
  try {
    return await exactMatch(generator, prompts, { maxNewTokens: NEW_TOKENS });
  } finally {
    await generator.release();
  }
}

describe("eval --task generate on a quantized folder, through generate's head tables", () => {
  let q4: string;
  beforeAll(() => {
    q4 = path.join(scratchDir("eval-generate-head"), "q4");
    saveQuantizedFolder(q4, quantizeModel(LlamaModel.load(REF_MODEL), { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(REF_MODEL, f), path.join(q4, f));
  });

  it.each([
    ["8 (the default)", undefined, 8, /^8-bit table/],
    ["4", "4", 4, /^4-bit table/],
    ["float", "float", "float", /^float32/],
  ] as const)("--head-bits %s: the answers and exact match of the old path, the head named", async (_, flag, bits, head) => {
    const now = await evalJson(q4, flag);
    const before = await answersBefore(q4, bits);
    expect(now.head).toMatch(head);
    expect(now.answers.map((a) => [a.line, a.answer, a.match, a.stopReason])).toEqual(before.answers.map((a) => [a.line, a.answer, a.match, a.stopReason]));
    expect(now.exact_match).toBe(before.exactMatch);
    // Something was generated to compare (a run of empty answers would match any head).
    expect(now.answers.some((a) => a.answer.trim().length > 0)).toBe(true);
  });

  it("loads the model with the tables built from the file (no float embedding); --head-bits float loads it whole", async () => {
    const calls = async (flag: string | undefined) => {
      vi.mocked(loadBase).mockClear();
      await evalJson(q4, flag);
      return vi.mocked(loadBase).mock.calls;
    };
    expect(await calls(undefined)).toEqual([[q4, { headTables: 8 }]]);
    expect(await calls("4")).toEqual([[q4, { headTables: 4 }]]);
    expect(await calls("float")).toEqual([[q4]]);
    const streamed = loadBase(q4, { headTables: 4 });
    expect(streamed.kind === "quantized" && !streamed.model.dense.has(EMBED) && streamed.model.tables?.embedding?.spec.bits).toBe(4);
  });

  it("refuses a width the tables do not have, before reading the model", async () => {
    await expect(evalJson(q4, "3")).rejects.toMatchObject({ code: "E_ARG", message: expect.stringContaining('--head-bits "3" must be 4, 8 or float') });
    vi.mocked(loadBase).mockClear();
    await expect(evalJson(path.join(q4, "missing"), "16")).rejects.toMatchObject({ code: "E_ARG" });
    expect(vi.mocked(loadBase)).not.toHaveBeenCalled();
  });

  it("refuses --head-bits with --task lm, whose scoring would not use that head (the command, dist/)", () => {
    const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;
    const r = spawnSync(process.execPath, [cli, "eval", "--model", q4, "--data", DATA, "--task", "lm", "--head-bits", "4"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/slimtune: error E_ARG: --head-bits applies to --task generate only; --task "lm"/);
  });
});
