// Tests for random training windows, the held-out tail split, and perplexity windows.

import { describe, expect, it } from "vitest";
import { TextBatches, evalWindows, splitHeldOut } from "../../src/data/text-batches.js";
import { Rng } from "../../src/core/rng.js";

const iota = (n: number) => Int32Array.from({ length: n }, (_, i) => i);

describe("TextBatches", () => {
  it("returns rows of consecutive tokens with targets shifted by one", () => {
    const tokens = iota(50).map((x) => x * 3 + 7);
    const { inputs, targets } = new TextBatches(tokens, { batch: 4, seq: 6, rng: new Rng(1) }).next();
    expect(inputs.length).toBe(24);
    expect(targets.length).toBe(24);
    for (let b = 0; b < 4; b++) {
      const start = (Number(inputs[b * 6]) - 7) / 3;
      for (let i = 0; i < 6; i++) {
        expect(inputs[b * 6 + i]).toBe(BigInt(tokens[start + i]!));
        expect(targets[b * 6 + i]).toBe(BigInt(tokens[start + i + 1]!));
      }
    }
  });

  it("is deterministic for a seed and differs across seeds", () => {
    const tokens = iota(10_000);
    const draw = (seed: number) => new TextBatches(tokens, { batch: 3, seq: 16, rng: new Rng(seed) }).next();
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7).inputs).not.toEqual(draw(8).inputs);
  });

  it("resumes from saved RNG state to the same next batch", () => {
    const tokens = iota(10_000);
    const rng = new Rng(99);
    const a = new TextBatches(tokens, { batch: 2, seq: 8, rng });
    a.next();
    a.next();
    const saved = JSON.stringify(rng.getState());
    const expected = a.next();
    const b = new TextBatches(tokens, { batch: 2, seq: 8, rng: Rng.fromState(JSON.parse(saved) as number[]) });
    expect(b.next()).toEqual(expected);
  });

  it("reaches every start position, including the last, when tokens.length is seq + 2", () => {
    const tokens = iota(6);
    const batches = new TextBatches(tokens, { batch: 1, seq: 4, rng: new Rng(2) });
    const starts = new Set<bigint>();
    for (let i = 0; i < 100; i++) starts.add(batches.next().inputs[0]!);
    expect([...starts].sort()).toEqual([0n, 1n]);
  });

  it("accepts exactly seq + 1 tokens", () => {
    const { targets } = new TextBatches(iota(5), { batch: 2, seq: 4, rng: new Rng(0) }).next();
    expect(Array.from(targets)).toEqual([1n, 2n, 3n, 4n, 1n, 2n, 3n, 4n]);
  });

  it("rejects too few tokens with E_DATA naming the count and seq", () => {
    expect(() => new TextBatches(iota(10), { batch: 1, seq: 10, rng: new Rng(0) })).toThrow(
      expect.objectContaining({ code: "E_DATA", message: expect.stringMatching(/10 tokens.*--seq 10.*smaller --seq/) }),
    );
  });

  it.each([
    { batch: 0, seq: 4 },
    { batch: 2, seq: 0 },
    { batch: 1.5, seq: 4 },
  ])("rejects $batch × $seq with E_ARG", ({ batch, seq }) => {
    expect(() => new TextBatches(iota(100), { batch, seq, rng: new Rng(0) })).toThrow(
      expect.objectContaining({ code: "E_ARG" }),
    );
  });
});

describe("splitHeldOut", () => {
  it.each([
    // [tokens, fraction, seq, heldOut length]
    [1000, 0.1, 10, 100],
    [1000, 0.001, 10, 11], // at least seq + 1
    [1000, 0.9, 10, 500], // at most half
    [1000, 0, 10, 0], // disabled
    [22, 0.01, 10, 11],
  ])("%d tokens, fraction %d, seq %d → %d held out from the tail", (n, fraction, seq, held) => {
    const tokens = iota(n);
    const { train, heldOut } = splitHeldOut(tokens, fraction, seq);
    expect(heldOut.length).toBe(held);
    expect(train.length + heldOut.length).toBe(n);
    expect(train[train.length - 1]).toBe(n - held - 1);
    if (held > 0) expect(heldOut[0]).toBe(n - held);
  });

  it("rejects data too short for a held-out window with E_DATA", () => {
    expect(() => splitHeldOut(iota(21), 0.1, 10)).toThrow(expect.objectContaining({ code: "E_DATA" }));
  });

  it.each([-0.1, 1, NaN])("rejects fraction %d with E_ARG", (f) => {
    expect(() => splitHeldOut(iota(100), f, 4)).toThrow(expect.objectContaining({ code: "E_ARG" }));
  });
});

describe("evalWindows", () => {
  it.each([
    // [tokens, ctx, windows, dropped 1-token tail]
    [10, 5, [[0, 5], [5, 5]], false],
    [12, 5, [[0, 5], [5, 5], [10, 2]], false],
    [11, 5, [[0, 5], [5, 5]], true],
    [3, 5, [[0, 3]], false],
    [2, 2, [[0, 2]], false],
    [1001, 100, Array.from({ length: 10 }, (_, i) => [i * 100, 100]), true],
    [1002, 100, [...Array.from({ length: 10 }, (_, i) => [i * 100, 100]), [1000, 2]], false],
  ])("%d tokens, ctx %d → %j", (n, ctx, want, dropped) => {
    const windows = evalWindows(iota(n), ctx);
    expect(windows.map((w) => [w.start, w.length])).toEqual(want);
    const predicted = windows.reduce((s, w) => s + w.length - 1, 0);
    expect(predicted).toBe(n - windows.length - (dropped ? 1 : 0));
    for (const w of windows) expect(w.length).toBeGreaterThanOrEqual(2);
  });

  it("covers a long stream without gaps or overlap", () => {
    const windows = evalWindows(iota(12_345), 512);
    let next = 0;
    for (const w of windows) {
      expect(w.start).toBe(next);
      next += w.length;
    }
    expect(next).toBe(12_345);
  });

  it.each([
    [1, 4, "E_DATA"],
    [0, 4, "E_DATA"],
    [10, 1, "E_ARG"],
  ])("%d tokens, ctx %d → %s", (n, ctx, code) => {
    expect(() => evalWindows(iota(n), ctx)).toThrow(expect.objectContaining({ code }));
  });
});
