// `slimtune generate --head-bits` on a 4-bit folder of ref-llama-5m: the default 8-bit table, a
// 4-bit one, the float head kept, named in --json's "head" and on stderr; a bad value refused.

import { spawnSync } from "node:child_process";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = scratchDir("cli-generate-head");
const q4 = path.join(dir, "q4");
const prompt = ["--prompt", " The tower is", "--max-new-tokens", "6", "--ignore-eos"];

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("slimtune generate --head-bits", () => {
  beforeAll(() => {
    const r = slimtune(["quantize", "--model", REF_MODEL, "--bits", "4", "--group-size", "32", "--sym", "--out", q4, "--json"]);
    expect(r.code, r.stderr).toBe(0);
  });

  const head = (extra: string[]) => {
    const r = slimtune(["generate", "--model", q4, ...prompt, "--json", ...extra]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { head: string; ids: number[] };
    expect(json.ids).toHaveLength(6);
    return json.head;
  };

  it("generates through an 8-bit table by default and says so (--json and stderr)", () => {
    expect(head([])).toBe("8-bit table (RTN, groups of 32, quantized at load)");
    const streamed = slimtune(["generate", "--model", q4, ...prompt]);
    expect(streamed.stderr).toMatch(/embedding\/LM head 8-bit table/);
  });

  it("--head-bits 4 and --head-bits float", () => {
    expect(head(["--head-bits", "4"])).toMatch(/^4-bit table/);
    expect(head(["--head-bits", "float"])).toMatch(/^float32/);
  });

  it("refuses a width the tables do not have", () => {
    const r = slimtune(["generate", "--model", q4, ...prompt, "--head-bits", "3"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/slimtune: error E_ARG: --head-bits "3" must be 4, 8 or float/);
  });

  it("refuses --head-bits beside --adapter instead of ignoring it (the adapter keeps the float head)", () => {
    const adapter = path.join(dir, "no-adapter-needed");
    for (const command of ["generate", "chat"]) {
      const r = slimtune([command, "--model", q4, ...(command === "generate" ? prompt : []), "--adapter", adapter, "--head-bits", "4"]);
      expect(r.code, command).toBe(2);
      expect(r.stderr).toMatch(/slimtune: error E_ARG: --head-bits applies only without --adapter/);
    }
  });
});
