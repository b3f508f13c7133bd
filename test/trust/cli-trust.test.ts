// The trust issue end to end through the real command: strict flags, outputs that never clobber the
// user's files, divergence that publishes nothing, Inf/NaN weights refused, bounds checked before work.
// Each refusal is a typed error with exit code 2, no stack trace, and nothing of the user's changed.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REF_MODEL, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const dir = scratchDir("trust-cli");
const tiny = ["--batch", "2", "--seq", "32", "--eval-every", "0", "--eval-tokens", "64"];

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectRefusal(args: string[], code: string, message: RegExp) {
  const r = slimtune(args);
  expect(r.stderr).toMatch(new RegExp(`^slimtune: error ${code}: `, "m"));
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(r.code).toBe(2);
  return r;
}

/** Every file under `root` with its bytes, to show nothing changed. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(root, { recursive: true }) as string[]) {
    const p = path.join(root, f);
    if (fs.statSync(p).isFile()) out[f] = fs.readFileSync(p, "base64");
  }
  return out;
}

function userFolder(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(path.join(d, "checkpoint"), { recursive: true });
  fs.writeFileSync(path.join(d, "checkpoint", "notes.txt"), "my notes");
  fs.writeFileSync(path.join(d, "metrics.jsonl"), "mine\n");
  return d;
}

/** A copy of ref-llama-5m whose first tensor holds a NaN. */
function nanModel(): string {
  const d = path.join(dir, "nan-model");
  fs.mkdirSync(d);
  for (const f of fs.readdirSync(REF_MODEL)) if (f !== "reference.json") fs.copyFileSync(path.join(REF_MODEL, f), path.join(d, f));
  const file = path.join(d, "model.safetensors");
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { data_offsets?: [number, number] }>;
  const [, first] = Object.entries(header).find(([k]) => k !== "__metadata__")!;
  bytes.writeFloatLE(NaN, 8 + headerLength + first.data_offsets![0] + 4 * 7);
  fs.writeFileSync(file, bytes);
  return d;
}

describe("strict command lines", () => {
  it.each([
    [["finetune", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--stpes", "5", "--out", "a"], /unknown flag --stpes for finetune; did you mean --steps\?/],
    [["quantize", "--model", REF_MODEL, "--bitz", "3", "--out", "b"], /unknown flag --bitz for quantize; did you mean --bits\?/],
    [["quantize", "--model", REF_MODEL, "--group_size", "32", "--out", "c"], /did you mean --group-size\?/],
    [["finetune", "--method", "peqa", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--rank", "4", "--out", "d"], /--rank is a flag of --method .*lora.*; --method peqa does not use it/],
    [["eval", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--json=yes"], /--json is a switch/],
    [["finetnue", "--model", REF_MODEL], /unknown command "finetnue"; did you mean finetune\?/],
  ])("refuses %j and writes nothing", (args, message) => {
    expectRefusal(args, "E_ARG", message);
    for (const out of ["a", "b", "c", "d"]) expect(fs.existsSync(path.join(dir, out))).toBe(false);
  });

  it("wraps --help to the terminal", () => {
    const r = slimtune(["finetune", "--help"]);
    expect(r.code).toBe(0);
    expect(Math.max(...r.stdout.split("\n").map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(r.stdout).toContain("--overwrite");
  });
});

describe("outputs never clobber", () => {
  it("refuses a folder of the user's, and with --overwrite replaces it only once the result is complete", () => {
    const user = userFolder("user-run");
    const before = snapshot(user);
    expectRefusal(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "2", ...tiny, "--out", user], "E_ARG", /holds files slimtune did not write .*--overwrite/);
    expectRefusal(["quantize", "--model", REF_MODEL, "--out", user], "E_ARG", /holds files slimtune did not write/);
    // A run that fails with --overwrite leaves the folder as it was.
    expectRefusal(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", path.join(dir, "missing.txt"), "--steps", "2", ...tiny, "--out", user, "--overwrite"], "E_NOT_FOUND", /missing\.txt/);
    expect(snapshot(user)).toEqual(before);
    const ok = slimtune(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "2", ...tiny, "--out", user, "--overwrite"]);
    expect(ok.stderr).not.toMatch(/error/);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/replacing what was there: --overwrite/);
    expect(fs.readdirSync(user).sort()).toEqual([".slimtune-output", "adapter_config.json", "adapter_model.safetensors", "checkpoint", "metrics.jsonl", "report.html", "report.json"]);
    expect(fs.readdirSync(path.dirname(user)).filter((f) => f.startsWith(".user-run."))).toEqual([]);
    // Now the folder is slimtune's: a second run may write into it without --overwrite.
    expect(slimtune(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "2", ...tiny, "--out", user]).code).toBe(0);
  });

  it("creates a missing parent, refuses a file as --out, the input as --out, and an existing output file", () => {
    const deep = path.join(dir, "new", "deep", "q4");
    expect(slimtune(["quantize", "--model", REF_MODEL, "--bits", "4", "--out", deep]).code).toBe(0);
    expect(fs.existsSync(path.join(deep, "model.safetensors"))).toBe(true);
    const file = path.join(dir, "a-file.txt");
    fs.writeFileSync(file, "mine");
    expectRefusal(["quantize", "--model", REF_MODEL, "--out", file], "E_ARG", /--out is an existing file, not a folder/);
    expectRefusal(["export", "--format", "gguf", "--model", REF_MODEL, "--out", file], "E_ARG", /--out exists; choose a new file name, or pass --overwrite/);
    expect(fs.readFileSync(file, "utf8")).toBe("mine");
    expectRefusal(["quantize", "--model", deep, "--out", deep], "E_ARG", /is the --model folder/);
  });
});

describe("file-system failures", () => {
  it.skipIf(process.getuid?.() !== 0)("an --out the user may not write is E_IO naming the path (run as an unprivileged user)", () => {
    const locked = path.join(dir, "locked");
    fs.mkdirSync(locked, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    for (const args of [
      ["quantize", "--model", REF_MODEL, "--out", path.join(locked, "q")],
      ["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--out", path.join(locked, "run")],
    ]) {
      // Root may write anywhere, so the command runs as "nobody" (the tests run as root in CI).
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", uid: 65534, gid: 65534 });
      expect(r.stderr).toMatch(/^slimtune: error E_IO: .*locked\/(q|run): cannot create the output folder: permission denied.*\(EACCES\)/);
      expect(r.status).toBe(2);
    }
    expect(fs.readdirSync(locked)).toEqual([]);
  });
});

describe("divergence and non-finite weights", () => {
  it("stops --lr 1e3 with E_DIVERGED and publishes nothing", () => {
    const out = path.join(dir, "diverged");
    const r = expectRefusal(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--steps", "30", ...tiny, "--lr", "1e3", "--out", out], "E_DIVERGED", /training diverged at step \d+: .*lower --lr/);
    expect(r.stdout).not.toMatch(/saved to/);
    expect(fs.existsSync(path.join(out, "adapter_model.safetensors"))).toBe(false);
    const records = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string });
    expect(records.at(-1)!.kind).toBe("diverged");
  });

  it("refuses a model with a NaN weight in eval, finetune, generate and export", () => {
    const bad = nanModel();
    const message = /tensor .* holds NaN at index 7; the weights must be finite/;
    expectRefusal(["eval", "--model", bad, "--data", WIKITEXT_VALID, "--max-tokens", "512"], "E_SAFETENSORS", message);
    expectRefusal(["finetune", "--method", "lora", "--model", bad, "--data", WIKITEXT_VALID, "--steps", "2", ...tiny, "--out", path.join(dir, "nan-run")], "E_SAFETENSORS", message);
    expectRefusal(["generate", "--model", bad, "--prompt", "The"], "E_SAFETENSORS", message);
    expectRefusal(["export", "--format", "gguf", "--model", bad, "--out", path.join(dir, "nan.gguf")], "E_SAFETENSORS", message);
    expect(fs.existsSync(path.join(dir, "nan-run"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "nan.gguf"))).toBe(false);
  });
});

describe("bounds before work", () => {
  it("refuses --seq and --ctx past max_position_embeddings, and a run that cannot fit in memory", () => {
    expectRefusal(["finetune", "--method", "lora", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--seq", "2048", "--out", path.join(dir, "long")], "E_ARG", /--seq 2048 is longer than the model's max_position_embeddings \(1024\).*--allow-long-context/);
    expectRefusal(["eval", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--ctx", "4096"], "E_ARG", /--ctx 4096 is longer than the model's max_position_embeddings \(1024\)/);
    expectRefusal(["finetune", "--method", "full", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--batch", "512", "--seq", "1024", "--out", path.join(dir, "huge")], "E_MEMORY", /needs at least .* GiB .*--batch 512 --seq 1024.*free/);
    expect(fs.existsSync(path.join(dir, "long"))).toBe(false);
    expect(fs.existsSync(path.join(dir, "huge"))).toBe(false);
  });
});
