// Strict flags: every way a command line can be silently misread is an E_ARG naming the flag.

import { describe, expect, it } from "vitest";
import type { ArgsDef } from "citty";
import { SlimtuneError } from "../../src/core/errors.js";
import { checkFlags, closest, editDistance } from "../../src/cli/strict-flags.js";
import { renderHelp } from "../../src/cli/help.js";

const args: ArgsDef = {
  steps: { type: "string", default: "100", description: "Optimizer steps" },
  "group-size": { type: "string", description: "Columns per group" },
  json: { type: "boolean", description: "JSON output" },
  lr: { type: "string", description: "Learning rate" },
};

function refusal(argv: string[]): string {
  try {
    checkFlags("finetune", argv, args);
  } catch (e) {
    expect(e).toBeInstanceOf(SlimtuneError);
    expect((e as SlimtuneError).code).toBe("E_ARG");
    return (e as Error).message;
  }
  throw new Error(`accepted: ${argv.join(" ")}`);
}

describe("checkFlags", () => {
  it.each([
    [["--stpes", "5"], /unknown flag --stpes for finetune; did you mean --steps\?/],
    [["--group_size", "32"], /unknown flag --group_size .*did you mean --group-size\?/],
    [["--groupSize", "32"], /did you mean --group-size\?/],
    [["--zzzzzzzz"], /unknown flag --zzzzzzzz .*see --help/],
    [["--steps", "5", "--steps", "6"], /--steps is given twice with different values \("5" and "6"\)/],
    [["--steps=5", "--steps", "6"], /given twice/],
    [["--json=yes"], /--json is a switch and takes no value \(got "yes"\)/],
    [["--json", "yes"], /takes no argument "yes"/],
    [["--steps"], /--steps needs a value \(e\.g\. --steps 100\)/],
    [["--steps", "--json"], /--steps needs a value/],
    [["-s", "5"], /flags start with two dashes/],
    [["--no-steps"], /unknown flag --no-steps/],
  ])("refuses %j", (argv, message) => {
    expect(refusal(argv)).toMatch(message);
  });

  it("accepts what the command declares, a repeated identical value, negative numbers and --no-<switch>", () => {
    const uses = checkFlags("finetune", ["--steps", "5", "--steps=5", "--lr", "-1e-3", "--no-json", "--group-size=32"], args);
    expect(uses.map((u) => [u.name, u.value])).toEqual([
      ["steps", "5"],
      ["steps", "5"],
      ["lr", "-1e-3"],
      ["json", false],
      ["group-size", "32"],
    ]);
  });

  it("suggests only close names", () => {
    expect(editDistance("stpes", "steps")).toBe(2);
    expect(closest("bitz", ["bits", "group-size"])).toBe("bits");
    expect(closest("model-dir", ["steps", "lr"])).toBeUndefined();
  });
});

describe("renderHelp", () => {
  it("wraps every line to the terminal width", () => {
    const long: ArgsDef = { method: { type: "string", description: "word ".repeat(200), default: "full" }, ...args };
    for (const columns of [60, 80, 120]) {
      const text = renderHelp("slimtune finetune", { description: "Fine-tune" }, long, [], columns);
      const widest = Math.max(...text.split("\n").map((l) => l.length));
      expect(widest).toBeLessThanOrEqual(Math.max(60, columns));
      expect(text).toContain("--group-size <group_size>");
      expect(text).toContain("(default: full)");
    }
  });
});
