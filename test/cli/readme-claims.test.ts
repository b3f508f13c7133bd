// The README's commands that no other test ran to success, each with the smallest settings that
// still exercise it: `demo`, `pruning-adapter`, `quantize --method reallm | lqlora | --budget-mb`
// and `finetune --method peqa | lqlora | reallm` on what quantize wrote, then `eval` of the result.
// The quantize → finetune chains use tiny-llama3-rope (2 layers) to stay cheap. Runs dist/.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LlamaModel } from "../../src/models/llama/model.js";
import { REF_MODEL, SHARED, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const TINY = path.join(SHARED, "models", "tiny-llama3-rope");
const SST2 = path.join(SHARED, "data", "sst-2");

function slimtune(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await slimtune(args);
  expect(r.code, `slimtune ${args.join(" ")}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

const train = ["--data", WIKITEXT_VALID, "--steps", "2", "--batch", "2", "--seq", "32", "--eval-every", "0", "--held-out", "0.01"];
const evalJson = async (args: string[]) => JSON.parse(await ok(["eval", ...args, "--data", WIKITEXT_VALID, "--max-tokens", "512", "--ctx", "128", "--json"])) as { perplexity: number };

describe("README commands run to success", () => {
  it("slimtune demo: float, RTN and PEQA perplexities, the adapter written, PEQA below RTN", async () => {
    const out = path.join(scratchDir("demo"), "run");
    const stdout = await ok(["demo", "--steps", "2", "--eval-tokens", "1024", "--out", out]);
    const row = (label: string) => Number(new RegExp(`^\\| ${label.replace(/[()+]/g, "\\$&")} \\| ([\\d.]+) \\|`, "m").exec(stdout)?.[1]);
    expect(row("float32")).toBeGreaterThan(1);
    expect(row("PEQA 4-bit (+ adapter)")).toBeLessThan(row("RTN 4-bit"));
    expect(fs.existsSync(path.join(out, "peqa4-tuned"))).toBe(true);
    // The run's report beside them: perplexity RTN → PEQA as the table printed it, and the page.
    const report = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8")) as { command: string; quality: { metric: string; before: number; after: number } };
    expect(report.command).toBe("demo");
    expect(report.quality.metric).toBe("perplexity");
    expect(report.quality.before).toBeCloseTo(row("RTN 4-bit"), 1);
    expect(report.quality.after).toBeCloseTo(row("PEQA 4-bit (+ adapter)"), 1);
    expect(fs.readFileSync(path.join(out, "report.html"), "utf8")).toContain("perplexity");
  });

  it("pruning-adapter: prunes, trains LoRA on the pruned model, reports accuracy, writes a loadable folder", async () => {
    const dir = scratchDir("pa");
    const out = path.join(dir, "run");
    // The first lines of SST-2 (header kept): tokenizing all 67k training sentences alone takes a minute.
    const head = (file: string, lines: number) => {
      const to = path.join(dir, path.basename(file));
      fs.writeFileSync(to, fs.readFileSync(path.join(SST2, file), "utf8").split("\n").slice(0, lines + 1).join("\n") + "\n");
      return to;
    };
    const r = JSON.parse(
      await ok(["pruning-adapter", "--model", REF_MODEL, "--task", "classify", "--data", head("train.tsv", 200), "--eval-data", head("dev.tsv", 64),
        "--ratio", "0.3", "--steps", "2", "--batch", "4", "--samples", "2", "--warmup", "1", "--json", "--out", out]),
    ) as Record<string, unknown>;
    expect(JSON.stringify(r)).toMatch(/accuracy/);
    // 30 % of the heads and channels gone: the folder loads and is smaller than the model it came from.
    expect(LlamaModel.load(out).parameterCount).toBeLessThan(0.9 * LlamaModel.load(REF_MODEL).parameterCount);
  });

  it("quantize (RTN) → finetune --method peqa → eval --adapter", async () => {
    const dir = scratchDir("peqa");
    await ok(["quantize", "--model", TINY, "--bits", "4", "--group-size", "32", "--out", path.join(dir, "q")]);
    await ok(["finetune", "--method", "peqa", "--model", path.join(dir, "q"), ...train, "--lr", "1e-4", "--out", path.join(dir, "tuned")]);
    const before = await evalJson(["--model", path.join(dir, "q")]);
    const after = await evalJson(["--model", path.join(dir, "q"), "--adapter", path.join(dir, "tuned")]);
    expect(after.perplexity).not.toBe(before.perplexity);
  });

  it("quantize --method lqlora → finetune --method lqlora → eval --adapter", async () => {
    const dir = scratchDir("lqlora");
    await ok(["quantize", "--model", TINY, "--method", "lqlora", "--bits", "3", "--group-size", "64", "--rank", "4", "--out", path.join(dir, "q")]);
    expect(fs.existsSync(path.join(dir, "q", "lqlora_adapter", "adapter_config.json"))).toBe(true);
    await ok(["finetune", "--method", "lqlora", "--model", path.join(dir, "q"), ...train, "--lr", "1e-3", "--out", path.join(dir, "tuned")]);
    const r = await evalJson(["--model", path.join(dir, "q"), "--adapter", path.join(dir, "tuned")]);
    expect(Number.isFinite(r.perplexity)).toBe(true);
  });

  it("quantize --method reallm → finetune --method reallm → eval of the folder it writes", async () => {
    const dir = scratchDir("reallm");
    await ok(["quantize", "--model", TINY, "--method", "reallm", "--bits-per-weight", "4", "--rank", "2", "--vq-dim", "2", "--code-bits", "4", "--vq-block", "32", "--out", path.join(dir, "q")]);
    await ok(["finetune", "--method", "reallm", "--model", path.join(dir, "q"), ...train, "--lr", "1e-4", "--out", path.join(dir, "tuned")]);
    const before = await evalJson(["--model", path.join(dir, "q")]);
    const after = await evalJson(["--model", path.join(dir, "tuned")]);
    expect(after.perplexity).not.toBe(before.perplexity);
  });

  it("quantize --budget-mb with Bayesian optimisation writes a model within the budget", async () => {
    const dir = scratchDir("budget");
    const out = path.join(dir, "q");
    const stdout = await ok(["quantize", "--model", TINY, "--group-size", "32", "--budget-mb", "2.25", "--data", WIKITEXT_VALID, "--trials", "2", "--workers", "1",
      "--recovery-steps", "1", "--samples", "1", "--batch", "2", "--seq", "32", "--out", out, "--json"]);
    expect(JSON.stringify(JSON.parse(stdout))).toMatch(/trial/);
    let bytes = 0;
    for (const f of fs.readdirSync(out)) if (f.endsWith(".safetensors")) bytes += fs.statSync(path.join(out, f)).size;
    expect(bytes).toBeLessThanOrEqual(2.25e6);
    expect(Number.isFinite((await evalJson(["--model", out])).perplexity)).toBe(true);
  });
});
