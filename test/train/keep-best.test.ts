// finetune --keep best|last and the per-method learning-rate defaults, through the real command.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REF_MODEL, SHARED, WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = scratchDir("keep-best");
const SHAKESPEARE = path.join(SHARED, "data", "tinyshakespeare", "input.txt");

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function records(out: string): Array<{ kind: string; step: number; held_out_loss?: number; lr?: number }> {
  return fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

// Tuning on Shakespeare while held out on WikiText-2 makes the held-out loss rise after the start,
// so the best evaluation is not the last one.
const drifting = (out: string, keep: string) => [
  "finetune", "--method", "lora", "--model", REF_MODEL, "--data", SHAKESPEARE, "--eval-data", WIKITEXT_TEST,
  "--steps", "8", "--batch", "4", "--seq", "64", "--eval-every", "2", "--eval-tokens", "2048", "--lr", "1e-2", "--keep", keep, "--out", out, "--json",
];

describe("finetune --keep", () => {
  it("best: ends with the weights of the best held-out evaluation, and scores them after training", () => {
    const out = path.join(dir, "best");
    const r = slimtune(drifting(out, "best"));
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { keptStep: number | null; heldOutAfter: { loss: number } };
    const evals = records(out).filter((x) => x.kind === "eval");
    const during = evals.slice(0, -1); // the last record is the evaluation after training
    const best = during.reduce((a, b) => (b.held_out_loss! < a.held_out_loss! ? b : a));
    expect(best.step).not.toBe(8);
    expect(summary.keptStep).toBe(best.step);
    expect(summary.heldOutAfter.loss).toBeCloseTo(best.held_out_loss!, 6);
  });

  it("last (the default): ends with the last step's weights", () => {
    const out = path.join(dir, "last");
    const r = slimtune(drifting(out, "last"));
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { keptStep: number | null; heldOutAfter: { loss: number } };
    expect(summary.keptStep).toBeNull();
    const best = Math.min(...records(out).filter((x) => x.kind === "eval").map((x) => x.held_out_loss!));
    expect(summary.heldOutAfter.loss).toBeGreaterThan(best + 1e-3);
  });

  it("best without held-out data, or an unknown --keep, is E_ARG", () => {
    const noHeldOut = slimtune(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--held-out", "0", "--steps", "2", "--batch", "2", "--seq", "32", "--keep", "best", "--out", path.join(dir, "none")]);
    expect(noHeldOut.stderr).toMatch(/E_ARG: --keep best chooses by the held-out evaluation, and this run has no held-out data/);
    expect(noHeldOut.code).toBe(2);
    const unknown = slimtune(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--keep", "first", "--out", path.join(dir, "unknown")]);
    expect(unknown.stderr).toMatch(/E_ARG: --keep "first" is unknown; choose last or best/);
  });
});

describe("learning-rate defaults per method", () => {
  it("lora trains at 1e-3 when --lr is not given, and --help lists every method's default", () => {
    const out = path.join(dir, "lr-default");
    const r = slimtune(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "3", "--warmup", "1", "--batch", "2", "--seq", "32", "--eval-every", "0", "--held-out", "0", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const peak = Math.max(...records(out).filter((x) => x.kind === "train").map((x) => x.lr!));
    expect(peak).toBeCloseTo(1e-3, 12);
    const help = slimtune(["finetune", "--help"]);
    expect(help.stdout.replace(/\s+/g, " ")).toMatch(/default per method: full 0\.0001, lora 0\.001, qlora 0\.001, finegates 0\.001, peqa 0\.002/);
  });
});
