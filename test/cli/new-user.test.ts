// What a new user trips over (issue 23), each checked the way they would meet it: the README's paths
// and library script as written, the names `eval` gives models, the lines `prune`, `finetune
// --method finegates`, `quantize --avg-bits` and `qpruner` print, and `npx slimtune` in a project of
// their own. Spawns dist/ (build with `npx tsc -p tsconfig.build.json` first, as test/cli does).

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { trialVersusFinal } from "../../src/cli/mixed-precision-args.js";
import { lqloraAdapterDir } from "../../src/methods/lqlora/index.js";
import type { MixedPrecisionResult } from "../../src/recipes/mixed-precision/index.js";
import { defaultRecovery } from "../../src/recipes/mixed-precision/trial.js";
import { REF_MODEL, WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
const CLI = path.join(ROOT, "dist", "cli", "main.js");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const LONG = 300_000;

/** Runs a command without blocking the test worker; ONNX Runtime's and node-llama-cpp's installers stay offline. */
function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip", NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" };
    const child = spawn(cmd, args, { cwd: opts.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
const slimtune = (args: string[]) => run(process.execPath, [CLI, ...args]);

/** The first `lang` code block after `heading` in the README. */
function readmeBlock(heading: string, lang: string): string {
  const after = README.slice(README.indexOf(heading));
  const m = after.match(new RegExp("```" + lang + "\\n([\\s\\S]*?)```"));
  if (!m) throw new Error(`README has no ${lang} block under ${heading}`);
  return m[1]!;
}

/** `text` with each [from, to] replaced, failing when `from` is not there (the README changed under the test). */
function substitute(text: string, pairs: Array<[string, string]>): string {
  for (const [from, to] of pairs) {
    expect(text, `README snippet should contain ${from}`).toContain(from);
    text = text.split(from).join(to);
  }
  return text;
}

describe("README as a new user reads it", () => {
  it("the library snippet runs as written: progress, summary, test perplexity and generated text", async () => {
    const dir = scratchDir("readme-lib");
    fs.writeFileSync(path.join(dir, "train.txt"), fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 200_000));
    fs.writeFileSync(path.join(dir, "test.txt"), fs.readFileSync(WIKITEXT_TEST, "utf8").slice(0, 20_000));
    const script = substitute(readmeBlock("## Library", "ts"), [
      ['from "slimtune"', `from ${JSON.stringify(pathToFileURL(path.join(ROOT, "dist", "index.js")).href)}`],
      ['"models/my-llama"', JSON.stringify(REF_MODEL)],
      ["steps: 100", "steps: 2"],
    ]);
    fs.writeFileSync(path.join(dir, "tune.mjs"), script);
    const r = await run(process.execPath, ["tune.mjs"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/step 1\/2: loss \d+\.\d+, \d+ tokens\/s\nstep 2\/2: loss/);
    expect(r.stdout).toMatch(/^2 steps in [\d.]+ s; held-out loss \d+\.\d{3} → \d+\.\d{3}\n/);
    expect(r.stdout).toMatch(/\ntest perplexity \d+\.\d\d over \d+ tokens\nThe history of\S*\s+\S+/);
    expect(fs.existsSync(path.join(dir, "runs/a/adapter/peqa_adapter.json"))).toBe(true);
  }, LONG);

  it("quantize --method lqlora writes its adapter where the README says, and eval names what it scores", async () => {
    const line = README.split("\n").find((l) => l.includes("quantize") && l.includes("--method lqlora"));
    const documented = line?.match(/QDIR\/([\w-]+)/)?.[1];
    expect(documented, "README documents the adapter folder").toBe(lqloraAdapterDir);
    expect(README).toContain(`continues QDIR/${lqloraAdapterDir} on its base`);
    const qdir = path.join(scratchDir("lqlora"), "q");
    const q = await slimtune(["quantize", "--model", REF_MODEL, "--method", "lqlora", "--bits", "3", "--group-size", "64", "--rank", "4", "--out", qdir]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toContain(`LoRA part in ${path.join(qdir, lqloraAdapterDir)}`);
    expect(fs.existsSync(path.join(qdir, documented!, "adapter_config.json"))).toBe(true);
    const e = await slimtune(["eval", "--model", qdir, "--adapter", path.join(qdir, documented!), "--data", WIKITEXT_TEST, "--max-tokens", "512"]);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/^qlora adapter on the LQ-LoRA residual RTN 3-bit model \(groups of 64, asymmetric\): perplexity/);
  }, LONG);

  it("eval calls a Q4_0 GGUF file what it is, not a float model", async () => {
    const file = path.join(scratchDir("gguf-name"), "m.gguf");
    expect((await slimtune(["export", "--format", "gguf", "--model", REF_MODEL, "--dtype", "q4_0", "--out", file])).code).toBe(0);
    const e = await slimtune(["eval", "--model", file, "--data", WIKITEXT_TEST, "--max-tokens", "512", "--json"]);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).description).toBe("Q4_0 GGUF file (dequantized to float)");
  }, LONG);
});

describe("what the commands print", () => {
  it("finetune --method finegates says what it removed and what loads the result; its last progress line comes once", async () => {
    const out = path.join(scratchDir("fg-say"), "run");
    const r = await slimtune(["finetune", "--method", "finegates", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--target-sparsity", "0.3", "--steps", "2", "--batch", "2", "--seq", "32", "--eval-tokens", "512", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const saved = JSON.parse(fs.readFileSync(path.join(out, "finegates.json"), "utf8"));
    const n = (x: number) => x.toLocaleString("en");
    expect(r.stdout).toContain(`FineGates removed the gated-off heads and channels: parameters ${n(saved.parametersBefore)} → ${n(saved.parametersAfter)}`);
    expect(saved.parametersAfter).toBeLessThan(saved.parametersBefore);
    // Hardening cuts every layer to the same target: a plain config.
    expect(r.stdout).toContain(`the model in ${out} has the same widths in every layer: a plain LLaMA config that transformers`);
    expect(r.stderr.split("\n").filter((l) => l.includes("fine-tuning 2/2")).length).toBe(1);
  }, LONG);

  it("prune says who loads per-layer widths and what the cut cost on its calibration batches", async () => {
    const out = path.join(scratchDir("prune-say"), "p");
    const r = await slimtune(["prune", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--ratio", "0.3", "--schedule", "global", "--samples", "2", "--batch", "2", "--seq", "64", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/quality: calibration loss (\d+\.\d{4}) → (\d+\.\d{4}) \([+-]\d+\.\d{4} nats, perplexity ×[\d.]+\) on the 2 batches importance was measured on; held-out: slimtune eval --model /);
    expect(r.stdout).toContain("per-layer widths (config.json \"slimtune_layer_shapes\"): slimtune loads this folder, and llama.cpp after slimtune export --format gguf (architecture deci); stock transformers cannot");
    const record = JSON.parse(fs.readFileSync(path.join(out, "prune.json"), "utf8"));
    expect(record.calibration_loss_after).not.toBe(record.calibration_loss);
    expect(r.stdout).toContain(`${record.calibration_loss.toFixed(4)} → ${record.calibration_loss_after.toFixed(4)}`);
    const l2 = await slimtune(["prune", "--model", REF_MODEL, "--importance", "l2", "--ratio", "0.2", "--out", `${out}-l2`]);
    expect(l2.stdout).toContain("quality: not measured (no calibration data)");
    expect(l2.stdout).toContain("the same widths in every layer");
  }, LONG);

  it("quantize --avg-bits names the report files it writes beside the model", async () => {
    const out = path.join(scratchDir("mp-say"), "q");
    const r = await slimtune([
      "quantize", "--model", REF_MODEL, "--group-size", "32", "--avg-bits", "3.5", "--data", WIKITEXT_VALID, "--trials", "1", "--round-size", "1", "--random-starts", "0",
      "--workers", "0", "--samples", "1", "--batch", "2", "--seq", "32", "--recovery-steps", "1", "--held-out", "0.005", "--out", out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const named = r.stdout.match(/^also wrote in .*$/m)?.[0] ?? "";
    for (const f of ["mixed-precision.json", "pareto.json", "pareto.svg"]) {
      expect(named).toContain(`${f} (`);
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    }
  }, LONG);

  it("qpruner explains why its best trial's loss is not the final one", () => {
    const trial = { loss: 4.93, index: 3, origin: "bo" } as unknown as NonNullable<MixedPrecisionResult["best"]>;
    const m = { mode: "bo", best: trial, trials: new Array(16).fill(trial) } as unknown as MixedPrecisionResult;
    const why = trialVersusFinal(m, { task: "lm", recovery: defaultRecovery }, { loss: 5.22, steps: 200, lr: 1e-3, scoredOn: "the first 32,768 held-out tokens" });
    expect(why).toContain("best trial's loss (4.9300) is not the final one (5.2200)");
    expect(why).toContain(`${defaultRecovery.steps} LoRA steps at lr ${defaultRecovery.lr} and is scored on the first ${defaultRecovery.evalTokens.toLocaleString("en")} held-out tokens`);
    expect(why).toContain("200 steps at lr 0.001 scored on the first 32,768 held-out tokens");
    expect(why).toContain("lowest of 16 trials");
    expect(trialVersusFinal({ ...m, mode: "importance" }, { task: "lm", recovery: defaultRecovery }, { loss: 5.22, steps: 200, lr: 1e-3, scoredOn: "x" })).toBeNull();
  });
});

describe("npx slimtune in a project of one's own", () => {
  it("npm pack → npm install the tarball in a fresh project → npx slimtune --help and import \"slimtune\" work there", async () => {
    const documented = readmeBlock("## Use slimtune in your own project", "sh");
    expect(documented).toMatch(/^npm pack\b/m);
    expect(documented).toMatch(/^ONNXRUNTIME_NODE_INSTALL=skip npm install \S+\.tgz$/m);
    expect(documented).toMatch(/^npx slimtune --help$/m);
    const dir = scratchDir("own-project");
    // dist/ is built before the tests; --ignore-scripts skips `prepare` rebuilding it.
    const pack = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", dir, "--json"], { cwd: ROOT });
    expect(pack.code, pack.stderr).toBe(0);
    const tarball = path.join(dir, (JSON.parse(pack.stdout) as Array<{ filename: string }>)[0]!.filename);
    const project = path.join(dir, "my-project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "my-project", version: "1.0.0", private: true }));
    // Dependencies come from npm's cache where it has them (a CI machine after `npm ci`), else from the registry.
    const install = await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: project });
    expect(install.code, install.stderr).toBe(0);
    const help = await run("npx", ["--no-install", "slimtune", "--help"], { cwd: project });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/USAGE[\s\S]*COMMANDS/);
    for (const command of ["quantize", "finetune", "eval", "export"]) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    const lib = await run(process.execPath, ["--input-type=module", "-e", 'const s = await import("slimtune"); console.log(typeof s.train, typeof s.Generator)'], { cwd: project });
    expect(lib.code, lib.stderr).toBe(0);
    expect(lib.stdout.trim()).toBe("function function");
    // A copy, not a link back into this checkout.
    expect(fs.lstatSync(path.join(project, "node_modules", "slimtune")).isSymbolicLink()).toBe(false);
  }, LONG);
});
