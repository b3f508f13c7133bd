// `slimtune chat` on a 4-bit folder of ref-llama-5m loads its model as `generate` does
// (cli/generation-model.ts): the embedding/LM head as a table built from the file, so the float
// embedding is never in memory. Over two turns it says token for token what the path it had before
// says — the model loaded whole, its tables quantized from the loaded floats for --head-bits 4 and
// 8, as it was for --head-bits float — in process and through the command (dist/), which names
// the head it decodes with and refuses a width the tables lack.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadGenerationModel } from "../../src/cli/generation-model.js";
import { chatRendererFor } from "../../src/data/chat-template.js";
import { ChatSession } from "../../src/eval/chat-session.js";
import { Generator } from "../../src/eval/generate.js";
import { type HeadBits, withQuantizedHead } from "../../src/eval/head-tables.js";
import { generationScoring } from "../../src/export/deploy.js";
import { saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { loadBase } from "../../src/models/load.js";
import type { ScoringModel } from "../../src/models/scoring.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const TURNS = ["Hello, who are you?", "Tell me about the tower."];
const NEW_TOKENS = 6;

interface Turn {
  ids: number[];
  text: string;
}

/** Two turns of a chat with `model`, greedy, on one thread, as the command holds them. */
async function converse(dir: string, model: ScoringModel): Promise<Turn[]> {
  const tokenizer = await loadTokenizer(dir);
  const generator = await Generator.create(model, tokenizer, { threads: 1 }, { releaseHostCodes: true });
  try {
    const session = new ChatSession(generator, chatRendererFor(dir, undefined).renderer, tokenizer);
    const turns: Turn[] = [];
    for (const [i, text] of TURNS.entries()) {
      const r = await session.say(text, { maxNewTokens: NEW_TOKENS, temperature: 0, seed: i });
      turns.push({ ids: r.ids, text: r.text });
    }
    return turns;
  } finally {
    await generator.release();
  }
}

/** The model chat loaded before it shared generate's loading: the folder loaded whole. */
function modelBefore(dir: string, bits: HeadBits): ScoringModel {
  const loaded = loadBase(dir);
  return generationScoring(bits === "float" ? loaded : withQuantizedHead(loaded, bits).base);
}

function chatCommand(dir: string, extra: string[]) {
  const r = spawnSync(process.execPath, [CLI, "chat", "--model", dir, "--threads", "1", "--max-new-tokens", String(NEW_TOKENS), ...extra], {
    input: `${TURNS.join("\n")}\n/exit\n`,
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("chat on a quantized folder, through generate's head tables", () => {
  let q4: string;
  beforeAll(() => {
    q4 = path.join(scratchDir("chat-memory"), "q4");
    saveQuantizedFolder(q4, quantizeModel(LlamaModel.load(REF_MODEL), { scheme: "rtn", bits: 4, groupSize: 32, symmetric: true }));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(REF_MODEL, f), path.join(q4, f));
  });

  it.each([
    ["8 (the default)", undefined, 8, "8-bit table"],
    ["4", "4", 4, "4-bit table"],
    ["float", "float", "float", "float32"],
  ] as const)("--head-bits %s: the old path's tokens, in process and through the command", async (_, flag, bits, head) => {
    const before = await converse(q4, modelBefore(q4, bits));
    const now = loadGenerationModel(q4, undefined, bits);
    expect(now.head.startsWith(head)).toBe(true);
    const turns = await converse(q4, now.model);
    expect(turns.map((t) => t.ids)).toEqual(before.map((t) => t.ids));
    expect(turns.every((t) => t.ids.length > 0)).toBe(true);

    const r = chatCommand(q4, flag ? ["--head-bits", flag] : []);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`embedding/LM head ${head}`);
    expect(r.stdout).toBe(before.map((t) => `${t.text}\n`).join(""));
  });

  it("refuses a width the tables do not have", () => {
    const r = chatCommand(q4, ["--head-bits", "16"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/slimtune: error E_ARG: --head-bits "16" must be 4, 8 or float/);
  });
});
