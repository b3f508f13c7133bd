// `slimtune eval` against a value PyTorch computed: ref-llama-5m's reference batch written out as
// text is two 65-token windows, and with --ctx 65 eval predicts exactly the reference's 2 × 64
// targets, so its perplexity must be exp(the reference's float32 loss). (cli.test.ts accepts any
// perplexity in [100, 5000].) Runs the CLI from dist/ (npm test builds it first).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const ref = JSON.parse(fs.readFileSync(path.join(REF_MODEL, "reference.json"), "utf8")) as { input_ids: number[][]; targets: number[][]; fp32: { loss: number } };

describe("slimtune eval on the reference batch", () => {
  it("prints exp(PyTorch's loss) as perplexity, within 1e-4 relative", async () => {
    const tok = await loadTokenizer(REF_MODEL);
    const rows = ref.input_ids.map((ids, b) => [...ids, ref.targets[b]!.at(-1)!]);
    const text = tok.decode(rows.flat());
    // The text must tokenize back to the same ids, or the windows would not be the reference's.
    expect(tok.encode(text)).toEqual(rows.flat());
    const file = path.join(scratchDir("eval-known"), "batch.txt");
    fs.writeFileSync(file, text);
    const r = spawnSync(process.execPath, [CLI, "eval", "--model", REF_MODEL, "--data", file, "--ctx", String(rows[0]!.length), "--json"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { perplexity: number; tokens: number };
    expect(out.tokens).toBe(ref.targets.flat().length);
    expect(Math.abs(Math.log(out.perplexity) - ref.fp32.loss)).toBeLessThan(1e-4);
  });
});
