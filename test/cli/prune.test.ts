// `slimtune prune`, `quantize --budget-mb` and `qpruner` end to end on ref-llama-5m, FineGates runs
// read back by `prune --from-gates` and `eval --adapter`, and the typed errors for bad input (with
// nothing written).

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REF_MODEL, SHARED, WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const SST_TRAIN = path.join(SHARED, "data", "sst-2", "train.tsv");
// Whole pipelines: ~30–50 s on an idle 2-core machine, several times that when it is shared.
const LONG = 600_000;

/** Runs the CLI without blocking the test worker (long runs would starve vitest's RPC). */
function slimtune(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("slimtune prune", () => {
  it("prunes by L2 importance, prints before/after and per-layer widths as JSON, and writes a loadable folder", async () => {
    const out = path.join(scratchDir("prune"), "out");
    const r = await slimtune(["prune", "--model", REF_MODEL, "--importance", "l2", "--ratio", "0.3", "--keep-first", "1", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.report.parametersBefore).toBe(5475584);
    expect(s.report.blockParametersAfter / s.report.blockParametersBefore).toBeCloseTo(0.7, 1);
    expect(s.report.layers[0].channels).toEqual([704, 704]);
    expect(s.report.layers[3].channels[1]).toBeLessThan(704);
    const e = await slimtune(["eval", "--model", out, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--json"]);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, "prune.json"), "utf8")).importance).toBe("l2");
  });

  it("reads a FineGates run: eval scores the gated model before hardening, --from-gates removes at a new ratio", async () => {
    const dir = scratchDir("fg-run");
    const run = path.join(dir, "run");
    const t = await slimtune(["finetune", "--method", "finegates", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "2", "--batch", "2", "--seq", "32", "--eval-every", "0", "--held-out", "0", "--out", run, "--json"]);
    expect(t.code, t.stderr).toBe(0);
    const gated = await slimtune(["eval", "--model", REF_MODEL, "--adapter", run, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--json"]);
    expect(gated.code, gated.stderr).toBe(0);
    const hardened = await slimtune(["eval", "--model", run, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--json"]);
    // Hardening closed 20 % of the channels and a key/value group per layer: the numbers differ.
    expect(JSON.parse(gated.stdout).perplexity).not.toBe(JSON.parse(hardened.stdout).perplexity);
    const out = path.join(dir, "pruned");
    const p = await slimtune(["prune", "--from-gates", run, "--ratio", "0.5", "--out", out, "--json"]);
    expect(p.code, p.stderr).toBe(0);
    const s = JSON.parse(p.stdout);
    expect(s.report.layers[0].kvHeads).toEqual([4, 2]);
    expect(s.report.layers[0].channels).toEqual([704, 352]);
    expect((await slimtune(["eval", "--model", out, "--data", WIKITEXT_TEST, "--max-tokens", "1024"])).code).toBe(0);
  }, LONG);
});

describe("slimtune qpruner", () => {
  it("prunes, allocates bits by BO under the budget, recovers, and writes a GPTQ folder with a merged adapter", async () => {
    // The parent of --out does not exist yet (it used to fail with ENOENT mkdtemp after the work).
    const out = path.join(scratchDir("qpruner"), "missing-parent", "out");
    const r = await slimtune([
      "qpruner", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--ratio", "0.2", "--avg-bits", "3", "--trials", "2", "--round-size", "1",
      "--random-starts", "1", "--workers", "0", "--samples", "1", "--batch", "2", "--seq", "32", "--recovery-steps", "1", "--steps", "2",
      "--eval-tokens", "512", "--merge", "--out", out, "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.allocation.trials).toBe(2);
    expect(s.allocation.avgBits).toBeLessThanOrEqual(3);
    expect(s.prune.parametersAfter).toBeLessThan(s.prune.parametersBefore);
    expect(r.stderr).toMatch(/\[2\/3\] allocate bits \(bo\)[\s\S]*trial 2\/2[\s\S]*best so far/);
    for (const f of ["model.safetensors", "config.json", "mixed-precision.json", "pareto.json", "pareto.svg", "qpruner.json"]) expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    expect(fs.existsSync(path.join(out, "adapter"))).toBe(false);
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    expect(config.num_attention_heads).toBe(6); // uniform pruning: a plain config
    expect(Object.keys(config.quantization_config.dynamic ?? {}).length).toBeGreaterThan(0);
    const e = await slimtune(["eval", "--model", out, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--json"]);
    expect(e.code, e.stderr).toBe(0);
  }, LONG);
});

describe("bad input: a typed error naming the value and the fix, nothing written", () => {
  const dir = scratchDir("prune-bad");
  const out = path.join(dir, "out");
  const short = path.join(dir, "short.txt");
  fs.writeFileSync(short, "a few words only, far too short for sixteen calibration batches of windows.\n".repeat(3));
  const cases: Array<[string, string[], RegExp]> = [
    ["--ratio outside (0, 1)", ["prune", "--model", REF_MODEL, "--importance", "l2", "--ratio", "1.2", "--out", out], /E_ARG.*--ratio "1\.2".*strictly between 0 and 1/],
    ["--ratio 0", ["prune", "--model", REF_MODEL, "--importance", "l2", "--ratio", "0", "--out", out], /E_ARG.*strictly between 0 and 1/],
    ["calibration data shorter than --samples batches", ["prune", "--model", REF_MODEL, "--data", short, "--ratio", "0.2", "--out", out], /E_DATA.*calibration data has \d+ tokens.*--samples 16/],
    ["a ratio that empties a layer", ["prune", "--model", REF_MODEL, "--importance", "l2", "--ratio", "0.9", "--channel-multiple", "352", "--out", out], /E_ARG.*none of its 704 MLP channels.*--allow-empty-layers/],
    ["taylor without data", ["prune", "--model", REF_MODEL, "--ratio", "0.2", "--out", out], /E_ARG.*needs --data/],
    ["--from-gates on a folder that is not a FineGates run", ["prune", "--from-gates", REF_MODEL, "--out", out], /E_CONFIG.*not a FineGates run.*finetune --method finegates/],
    ["a budget below the smallest allocation", ["quantize", "--model", REF_MODEL, "--group-size", "32", "--budget-mb", "2", "--out", out], /E_ARG.*below the smallest allocation.*5\.678 MB.*pass at least 5\.679/],
    ["a budget above the float model", ["quantize", "--model", REF_MODEL, "--group-size", "32", "--budget-mb", "40", "--out", out], /E_ARG.*above the float model itself \(21\.902 MB\)/],
    ["bits outside {2, 3, 4, 8}", ["quantize", "--model", REF_MODEL, "--avg-bits", "3", "--bit-widths", "2,6", "--out", out], /E_ARG.*--bit-widths has 6.*2, 3, 4, 8/],
    ["qpruner without a budget", ["qpruner", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--out", out], /E_ARG.*--budget-mb/],
    ["qpruner with --ratio 1", ["qpruner", "--model", REF_MODEL, "--data", SST_TRAIN, "--task", "classify", "--avg-bits", "3", "--ratio", "1", "--out", out], /E_ARG.*strictly between 0 and 1/],
  ];
  it.each(cases)("%s", async (_, args, message) => {
    const r = await slimtune(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith(".out"))).toEqual([]);
  });
});
