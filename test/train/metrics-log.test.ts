// Tests for the JSONL metrics log: one line per record, truncate vs append, lines on disk before close.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MetricsLog } from "../../src/train/metrics-log.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "slimtune-metrics-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const lines = (path: string) =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as unknown);

describe("MetricsLog", () => {
  it("writes one JSON line per record, on disk before close", () => {
    const path = join(tmp(), "nested", "metrics.jsonl");
    const log = new MetricsLog(path, { append: false });
    log.write({ step: 1, loss: 2.5, phase: "train", clipped: true, eval: null });
    expect(lines(path)).toEqual([{ step: 1, loss: 2.5, phase: "train", clipped: true, eval: null }]);
    log.write({ step: 2, loss: NaN, note: "é ✓" });
    expect(readFileSync(path, "utf8").endsWith("\n")).toBe(true);
    expect(lines(path)).toHaveLength(2);
    expect(lines(path)[1]).toEqual({ step: 2, loss: null, note: "é ✓" });
    log.close();
    log.close();
    expect(() => log.write({ step: 3 })).toThrow(/after close/);
  });

  it.each([
    [false, [{ run: 2 }]],
    [true, [{ run: 1 }, { run: 2 }]],
  ])("append %s", (append, want) => {
    const path = join(tmp(), "m.jsonl");
    const first = new MetricsLog(path, { append: false });
    first.write({ run: 1 });
    first.close();
    const second = new MetricsLog(path, { append });
    second.write({ run: 2 });
    second.close();
    expect(lines(path)).toEqual(want);
  });
});
