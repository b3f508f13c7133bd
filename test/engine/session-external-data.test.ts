// A session created from an ONNX file whose weights are external data (SessionOptions.weightsFile)
// computes exactly what the in-memory session does, leaves no temporary folder behind on success or
// failure, and with releaseConstants lets go of the host's copies of the constants it wrote.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as E from "../../src/engine/index.js";
import { CompiledGraph, Graph } from "../../src/engine/index.js";
import { Rng } from "../../src/core/rng.js";

/** Token ids → a gathered table row → a Gemm with a weight and a bias; weights above and below the 4 KiB external-data threshold. */
function build({ oneBuffer = false } = {}) {
  const rng = new Rng(11);
  const fill = (n: number) => {
    const x = new Float32Array(n);
    rng.fillNormal(x, 1);
    return x;
  };
  // oneBuffer: the table and w as views into one buffer, as a loader reading one file may hand them out.
  const shared = oneBuffer ? fill(64 * 32 + 48 * 32) : null;
  const g = new Graph();
  const ids = g.input("ids", [2, 3], "int64");
  const table = g.constant(shared ? shared.subarray(0, 64 * 32) : fill(64 * 32), [64, 32], "float32", "table"); // 8 KiB: external
  const w = g.constant(shared ? shared.subarray(64 * 32) : fill(48 * 32), [48, 32], "float32", "w"); // 6 KiB: external
  const b = g.constant(fill(48), [48], "float32", "b"); // 192 B: stays in the model file
  const x = E.reshape(E.gather(table, ids), [6, 32]);
  const y = E.add(E.gemm(x, w, { transB: true }), b);
  return { g, outputs: { y }, constants: { table: table.data as Float32Array, w: w.data as Float32Array, b: b.data as Float32Array } };
}

/** The session folders left in `dir` (other libraries write their own files into TMPDIR too). */
const sessionFolders = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith("slimtune-session-"));

const feeds = { ids: { data: BigInt64Array.from([1n, 2n, 63n, 9n, 0n, 40n]), shape: [2, 3] } };

async function runOnce(compiled: CompiledGraph): Promise<number[]> {
  try {
    return Array.from((await compiled.run(feeds)).y!.data as Float32Array);
  } finally {
    await compiled.release();
  }
}

describe("sessions from an ONNX file with external data", () => {
  let tmp: string;
  let savedTmpdir: string | undefined;
  beforeEach(() => {
    // os.tmpdir() follows TMPDIR, so the session's temporary folder lands where the test can look.
    savedTmpdir = process.env.TMPDIR;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-external-test-"));
    process.env.TMPDIR = tmp;
  });
  afterEach(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("give the in-memory session's outputs bit for bit, and remove their temporary folder", async () => {
    const a = build();
    const want = await runOnce(await CompiledGraph.compile(a.g, a.outputs, { threads: 1 }));
    const b = build();
    const stages: string[] = [];
    let during: string[] = [];
    const trace = (s: string) => {
      stages.push(s);
      if (s === "serialized") during = sessionFolders(tmp);
    };
    const fromFile = await CompiledGraph.compile(b.g, b.outputs, { threads: 1, weightsFile: true, trace });
    expect(during).toHaveLength(1); // the folder existed while ORT read it
    expect(sessionFolders(tmp)).toEqual([]);
    expect(stages).toEqual(["runtime loaded", "serialized", "constants released", "session created"]);
    // Both files count: the table and w in the data file (each page-aligned), the rest in the model.
    expect(fromFile.onnxBytes).toBeGreaterThan(4096 + 6 * 1024);
    expect(await runOnce(fromFile)).toEqual(want);
    expect(want.every(Number.isFinite)).toBe(true);
  });

  it("remove the temporary folder when ONNX Runtime refuses the graph", async () => {
    const g = new Graph();
    const x = g.input("x", [2, 1024], "int32");
    const w = g.constant(new Int32Array(4 * 1024).fill(1), [4, 1024], "int32", "w"); // 16 KiB: external
    // ONNX Runtime has no int32 Gemm kernel, so session creation fails after the files are written.
    const y = E.gemm(x, w, { transB: true });
    await expect(CompiledGraph.compile(g, { y }, { threads: 1, weightsFile: true })).rejects.toMatchObject({ code: "E_ENGINE" });
    expect(sessionFolders(tmp)).toEqual([]);
  });

  it("with releaseConstants, detach the written constants' buffers and still compute the same outputs", async () => {
    const a = build();
    const want = await runOnce(await CompiledGraph.compile(a.g, a.outputs, { threads: 1 }));
    for (const weightsFile of [true, false]) {
      const b = build();
      expect(b.constants.table.length).toBe(64 * 32);
      const compiled = await CompiledGraph.compile(b.g, b.outputs, { threads: 1, weightsFile, releaseConstants: true });
      expect([b.constants.table.length, b.constants.w.length, b.constants.b.length]).toEqual([0, 0, 0]);
      expect(await runOnce(compiled)).toEqual(want);
    }
  });

  it("with releaseConstants, keep the constants the runtime feeds itself (lifted past the initializer cap)", async () => {
    const a = build();
    const want = await runOnce(await CompiledGraph.compile(a.g, a.outputs, { threads: 1 }));
    const b = build();
    // A cap of 7 KiB lifts only the 8 KiB table; every run feeds it, so its buffer must survive.
    const compiled = await CompiledGraph.compile(b.g, b.outputs, { threads: 1, weightsFile: true, releaseConstants: true, maxInitializerBytes: 7 * 1024 });
    expect(b.constants.table.length).toBe(64 * 32);
    expect(b.constants.w.length).toBe(0);
    expect(await runOnce(compiled)).toEqual(want);
  });

  it("with releaseConstants, keep a buffer that also backs a lifted constant", async () => {
    const a = build({ oneBuffer: true });
    const want = await runOnce(await CompiledGraph.compile(a.g, a.outputs, { threads: 1 }));
    const b = build({ oneBuffer: true });
    const compiled = await CompiledGraph.compile(b.g, b.outputs, { threads: 1, weightsFile: true, releaseConstants: true, maxInitializerBytes: 7 * 1024 });
    expect([b.constants.table.length, b.constants.w.length]).toEqual([64 * 32, 48 * 32]);
    expect(b.constants.b.length).toBe(0);
    expect(await runOnce(compiled)).toEqual(want);
  });

  it("remove the folders of runs that died while creating a session, and leave a live run's alone", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid; // exited before we look
    const stale = path.join(tmp, `slimtune-session-${dead}-AbC123`);
    const live = path.join(tmp, `slimtune-session-${process.pid}-XyZ789`);
    for (const dir of [stale, live]) {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, "model.onnx.data"), "left behind");
    }
    const b = build();
    await runOnce(await CompiledGraph.compile(b.g, b.outputs, { threads: 1, weightsFile: true }));
    expect(sessionFolders(tmp)).toEqual([path.basename(live)]);
  });
});
