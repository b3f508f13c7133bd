// `finetune --task sft` flags: defaults, and each bad value refused by name.

import { describe, expect, it } from "vitest";
import { dataFormatArg, sftJobTask } from "../../src/cli/sft-args.js";
import { expectSlimtuneError } from "../formats/helpers.js";

describe("sft flags", () => {
  it("defaults to answer-only loss, packing, cut-prompt, --seq 256 and a 5 % held-out sample", () => {
    expect(sftJobTask({}, "d.jsonl", 8, 3)).toEqual({ kind: "sft", dataFile: "d.jsonl", trainOnPrompt: false, tooLong: "cut-prompt", pack: true, batch: 8, seq: 256, heldOut: 0.05, seed: 3 });
    expect(sftJobTask({ pack: false, "train-on-prompt": true, "too-long": "drop", "data-format": "alpaca", "chat-template": "t.jinja", "eval-data": "dev.jsonl" }, "d.jsonl", 8, 0)).toMatchObject({
      pack: false,
      trainOnPrompt: true,
      tooLong: "drop",
      format: "alpaca",
      chatTemplateFile: "t.jinja",
      evalFile: "dev.jsonl",
    });
  });

  it("refuses unknown formats and policies, naming the choices", () => {
    expect(dataFormatArg("auto")).toBeUndefined();
    expect(dataFormatArg("messages")).toBe("messages");
    expectSlimtuneError(() => dataFormatArg("chatml"), "E_ARG", "--data-format", "prompt-completion");
    expectSlimtuneError(() => sftJobTask({ "too-long": "truncate" }, "d.jsonl", 8, 0), "E_ARG", "--too-long", "cut-prompt or drop");
    expectSlimtuneError(() => sftJobTask({ seq: "1" }, "d.jsonl", 8, 0), "E_ARG", "--seq");
  });
});
