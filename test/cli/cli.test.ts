// The CLI end to end: eval output, clear errors for bad input, and resume after a hard kill.

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REF_MODEL, WIKITEXT_TEST, WIKITEXT_VALID, scratchDir } from "../helpers/paths.js";

const CLI = new URL("../../dist/cli/main.js", import.meta.url).pathname;

function slimtune(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the reference model folder, changed by `edit`. */
function brokenModel(name: string, edit: (dir: string) => void): string {
  const dir = path.join(scratchDir(name), "model");
  fs.cpSync(REF_MODEL, dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, f), 0o644);
  edit(dir);
  return dir;
}

function rewriteHeader(dir: string, change: (header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void) {
  const file = path.join(dir, "model.safetensors");
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString("utf8"));
  change(header);
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(json), bytes.subarray(8 + n)]));
}

describe("slimtune eval", () => {
  it("prints perplexity, predicted tokens and seconds as JSON", () => {
    const r = slimtune(["eval", "--model", REF_MODEL, "--data", WIKITEXT_TEST, "--max-tokens", "2560", "--json"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toBe(2550); // 10 windows of 256 tokens, each predicting 255
    expect(out.perplexity).toBeGreaterThan(100);
    expect(out.perplexity).toBeLessThan(5000);
    expect(out.seconds).toBeGreaterThan(0);
  });
});

describe("bad input gets a typed error naming the file", () => {
  const emptyData = path.join(scratchDir("empty"), "empty.txt");
  fs.writeFileSync(emptyData, "\n\n");
  const cases: Array<[string, () => string[], string, RegExp]> = [
    ["missing model folder", () => ["--model", "/nonexistent/model", "--data", WIKITEXT_TEST], "E_NOT_FOUND", /\/nonexistent\/model/],
    ["missing model.safetensors", () => ["--model", brokenModel("nost", (d) => fs.rmSync(path.join(d, "model.safetensors"))), "--data", WIKITEXT_TEST], "E_NOT_FOUND", /model\.safetensors/],
    ["truncated model.safetensors", () => ["--model", brokenModel("trunc", (d) => fs.truncateSync(path.join(d, "model.safetensors"), 1_000_000)), "--data", WIKITEXT_TEST], "E_SAFETENSORS", /model\.safetensors/],
    ["bad safetensors header", () => ["--model", brokenModel("hdr", (d) => { const f = path.join(d, "model.safetensors"); const b = fs.readFileSync(f); b.write("{{{{", 8); fs.writeFileSync(f, b); }), "--data", WIKITEXT_TEST], "E_SAFETENSORS", /model\.safetensors/],
    ["offsets out of range", () => ["--model", brokenModel("off", (d) => rewriteHeader(d, (h) => { h["model.norm.weight"]!.data_offsets = [0, 1e9]; })), "--data", WIKITEXT_TEST], "E_SAFETENSORS", /model\.norm\.weight/],
    ["unsupported model_type", () => ["--model", brokenModel("type", (d) => { const f = path.join(d, "config.json"); fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, "utf8")), model_type: "falcon" })); }), "--data", WIKITEXT_TEST], "E_CONFIG", /falcon/],
    ["tensor of the wrong shape", () => ["--model", brokenModel("shape", (d) => { const f = path.join(d, "config.json"); fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, "utf8")), intermediate_size: 512 })); }), "--data", WIKITEXT_TEST], "E_SHAPE", /mlp\.\w+_proj\.weight/],
    ["empty data file", () => ["--model", REF_MODEL, "--data", emptyData], "E_DATA", /empty\.txt/],
    ["missing data file", () => ["--model", REF_MODEL, "--data", "/nonexistent/data.txt"], "E_NOT_FOUND", /data\.txt/],
  ];
  it.each(cases)("%s", (_name, args, code, mentions) => {
    const r = slimtune(["eval", ...args()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error ${code}`);
    expect(r.stderr).toMatch(mentions);
  });

  it("unknown --method", () => {
    const r = slimtune(["finetune", "--method", "magic", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--out", scratchDir("m")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/E_ARG.*magic.*full/);
  });
});

describe("slimtune finetune --method full", () => {
  it("resumes after a hard kill and writes a model folder", async () => {
    const out = path.join(scratchDir("kill"), "run");
    const args = ["finetune", "--method", "full", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--out", out,
      "--steps", "16", "--batch", "2", "--seq", "32", "--checkpoint-every", "4", "--eval-every", "0", "--eval-tokens", "512"];
    const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { stdio: "ignore" });
    const state = path.join(out, "checkpoint", "state.json");
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(state) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const killedAt = JSON.parse(fs.readFileSync(state, "utf8")).step as number;
    expect(killedAt).toBeGreaterThanOrEqual(4);
    expect(fs.existsSync(path.join(out, "model.safetensors"))).toBe(killedAt === 16);

    const r = slimtune([...args, "--resume", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.resumedFrom).toBe(killedAt);
    expect(summary.steps).toBe(16);
    const ev = slimtune(["eval", "--model", out, "--data", WIKITEXT_TEST, "--max-tokens", "1024", "--json"]);
    expect(ev.code, ev.stderr).toBe(0);
  });
});

describe("slimtune finetune stays responsive (training runs in a worker thread)", () => {
  it("answers Ctrl-C at once, checkpoints after the step, exits 130; a second Ctrl-C stops at once", async () => {
    const out = path.join(scratchDir("sigint"), "run");
    // Steps of ~1 s on batch 8 × 256: long enough that an answer during a step shows the main thread is free.
    const args = ["finetune", "--method", "full", "--model", REF_MODEL, "--data", WIKITEXT_VALID, "--out", out,
      "--steps", "200", "--batch", "8", "--seq", "256", "--checkpoint-every", "0", "--eval-every", "0", "--held-out", "0"];
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const metrics = path.join(out, "metrics.jsonl");
    const deadline = Date.now() + 90_000;
    while (!(fs.existsSync(metrics) && fs.readFileSync(metrics, "utf8").includes('"kind":"train"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const sent = Date.now();
    child.kill("SIGINT");
    while (!stderr.includes("stopping after this step") && Date.now() - sent < 10_000) await new Promise((r) => setTimeout(r, 20));
    expect(stderr).toContain("stopping after this step");
    expect(Date.now() - sent).toBeLessThan(1000);
    const code = await new Promise((r) => child.once("exit", (c) => r(c)));
    expect(code).toBe(130);
    const state = JSON.parse(fs.readFileSync(path.join(out, "checkpoint", "state.json"), "utf8"));
    expect(state.step).toBeGreaterThanOrEqual(1);
    expect(state.step).toBeLessThan(200);

    const again = spawn(process.execPath, [CLI, ...args, "--resume"], { stdio: ["ignore", "ignore", "pipe"] });
    let err2 = "";
    again.stderr!.on("data", (d) => (err2 += d));
    const before = fs.readFileSync(metrics, "utf8").split("\n").length;
    while (fs.readFileSync(metrics, "utf8").split("\n").length <= before && Date.now() < deadline + 60_000) await new Promise((r) => setTimeout(r, 50));
    again.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 100));
    const stopAt = Date.now();
    again.kill("SIGINT");
    const signal = await new Promise((r) => again.once("exit", (_c, sig) => r(sig)));
    expect(signal).toBe("SIGINT"); // a shell reports 130

    expect(Date.now() - stopAt).toBeLessThan(3000);
    expect(err2).toContain("stopped");
  });
});
