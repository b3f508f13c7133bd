// The memory estimate, output claims (no clobbering; stale temps), and metrics cut back on resume.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { OUTPUT_MARKER, claimOutputFile, claimOutputFolder, removeStaleTemps } from "../../src/core/output.js";
import { readLlamaConfig } from "../../src/formats/hf-config.js";
import { checkTrainingMemory, estimateTrainingMemory } from "../../src/train/memory.js";
import { MetricsLog } from "../../src/train/metrics-log.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const config = readLlamaConfig(REF_MODEL);
const ref = { config, totalParameters: 5_475_584, trainableParameters: 5_475_584, checkpointActivations: false };

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SlimtuneError);
    return (e as SlimtuneError).code;
  }
  return "accepted";
}

describe("training memory estimate", () => {
  it("refuses --batch 512 --seq 1024 on ref-llama-5m with the flags that reduce it", () => {
    const e = estimateTrainingMemory({ ...ref, batch: 512, seq: 1024 });
    // The logits alone: 3 × 4 bytes × 512 × 1024 tokens × 4096 classes.
    expect(e.logitsBytes).toBe(3 * 4 * 512 * 1024 * 4096);
    expect(() => checkTrainingMemory({ ...ref, batch: 512, seq: 1024 }, 24 * 2 ** 30)).toThrow(/needs at least .*GiB .*--batch 512 --seq 1024.*a smaller --batch.*--checkpoint-activations/);
    expect(code(() => checkTrainingMemory({ ...ref, batch: 512, seq: 1024 }, 24 * 2 ** 30))).toBe("E_MEMORY");
  });

  it("passes the default run and counts less with activation checkpointing", () => {
    expect(checkTrainingMemory({ ...ref, batch: 8, seq: 256 }, 2 * 2 ** 30).totalBytes).toBeLessThan(2 ** 30);
    const kept = estimateTrainingMemory({ ...ref, batch: 8, seq: 1024 });
    const recomputed = estimateTrainingMemory({ ...ref, batch: 8, seq: 1024, checkpointActivations: true });
    expect(recomputed.activationBytes).toBeLessThan(kept.activationBytes / 2);
  });
});

describe("output claims", () => {
  it("takes an absent, empty or marked folder, and refuses a folder of the user's without --overwrite", () => {
    const dir = scratchDir("claim");
    expect(claimOutputFolder(path.join(dir, "a", "b"), { overwrite: false })).toBe("created");
    expect(fs.existsSync(path.join(dir, "a", "b", OUTPUT_MARKER))).toBe(true);
    expect(claimOutputFolder(path.join(dir, "a", "b"), { overwrite: false })).toBe("ours");
    fs.mkdirSync(path.join(dir, "empty"));
    expect(claimOutputFolder(path.join(dir, "empty"), { overwrite: false })).toBe("empty");
    fs.mkdirSync(path.join(dir, "user"));
    fs.writeFileSync(path.join(dir, "user", "notes.txt"), "mine");
    expect(() => claimOutputFolder(path.join(dir, "user"), { overwrite: false })).toThrow(/holds files slimtune did not write \("notes\.txt"\).*--overwrite/);
    expect(claimOutputFolder(path.join(dir, "user"), { overwrite: true })).toBe("foreign");
    expect(fs.readdirSync(path.join(dir, "user"))).toEqual(["notes.txt"]);
    expect(() => claimOutputFolder(path.join(dir, "user", "notes.txt"), { overwrite: true })).toThrow(/is an existing file, not a folder/);
    expect(() => claimOutputFolder(dir, { overwrite: true, inputs: [["model", path.join(dir, "user")]] })).toThrow(/holds the --model input/);
    expect(() => claimOutputFolder(path.join(dir, "user"), { overwrite: true, inputs: [["model", path.join(dir, "user")]] })).toThrow(/is the --model folder/);
  });

  it("refuses an existing output file without --overwrite, and a folder given as the file", () => {
    const dir = scratchDir("claim-file");
    const file = path.join(dir, "m.gguf");
    claimOutputFile(file, { overwrite: false });
    fs.writeFileSync(file, "x");
    expect(() => claimOutputFile(file, { overwrite: false })).toThrow(/--out exists; choose a new file name, or pass --overwrite/);
    claimOutputFile(file, { overwrite: true });
    expect(() => claimOutputFile(dir, { overwrite: true })).toThrow(/--out is a folder/);
  });

  it("removes temp siblings of dead runs only", () => {
    const dir = scratchDir("stale");
    const target = path.join(dir, "run");
    const dead = path.join(dir, ".run.tmp-999999999-abcd");
    const live = path.join(dir, `.run.publish-${process.pid}-abcd`);
    const other = path.join(dir, ".other.tmp-999999999-abcd");
    for (const d of [dead, live, other]) fs.mkdirSync(d);
    expect(removeStaleTemps(target)).toEqual([".run.tmp-999999999-abcd"]);
    expect([fs.existsSync(dead), fs.existsSync(live), fs.existsSync(other)]).toEqual([false, true, true]);
  });
});

describe("metrics.jsonl on resume", () => {
  it("cuts the records after the checkpoint's step (and its eval, which the resumed run repeats)", () => {
    const file = path.join(scratchDir("metrics-resume"), "metrics.jsonl");
    const first = new MetricsLog(file, { append: false });
    first.write({ kind: "eval", step: 0, held_out_loss: 7 });
    for (let s = 1; s <= 7; s++) first.write({ kind: "train", step: s, loss: 7 - s / 10 });
    first.write({ kind: "eval", step: 5, held_out_loss: 6.5 });
    first.close();
    fs.appendFileSync(file, '{"kind":"train","step":8,"lo'); // a line cut short by the kill
    const resumed = new MetricsLog(file, { append: true, keepThroughStep: 5 });
    resumed.write({ kind: "eval", step: 5, held_out_loss: 6.5 });
    resumed.write({ kind: "train", step: 6, loss: 6.4 });
    resumed.close();
    const records = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { kind: string; step: number });
    expect(records.map((r) => `${r.kind}@${r.step}`)).toEqual(["eval@0", "train@1", "train@2", "train@3", "train@4", "train@5", "eval@5", "train@6"]);
  });
});

describe("a full disk", () => {
  it("is E_IO naming the file, and leaves no temp file behind", async () => {
    const { vi } = await import("vitest");
    const { writeFileAtomic } = await import("../../src/core/atomic.js");
    const dir = scratchDir("enospc");
    const spy = vi.spyOn(fs, "writeSync").mockImplementation(() => {
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
    });
    try {
      const target = path.join(dir, "model.safetensors");
      expect(() => writeFileAtomic(target, new Uint8Array(16))).toThrow(/model\.safetensors: cannot write the file: the disk is full; free space or choose a path on another disk \(ENOSPC\)/);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });
});
