// Append-only JSONL metrics file, written synchronously so a killed run loses at most one line.

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomic } from "../core/atomic.js";
import { withIo } from "../core/io.js";

export type MetricsRecord = Record<string, number | string | boolean | null>;

export class MetricsLog {
  readonly path: string;
  private fd: number | null;

  /**
   * append: false truncates an existing file (a fresh run); true continues it (a resumed run).
   * keepThroughStep (with append): records after that step — written by the run that was killed
   * after its last checkpoint, and about to be written again — are cut first, and so is the eval at
   * that step, which the resumed run repeats.
   */
  constructor(path: string, { append, keepThroughStep }: { append: boolean; keepThroughStep?: number }) {
    this.path = path;
    withIo(dirname(path), "create the run folder", () => mkdirSync(dirname(path), { recursive: true }));
    if (append && keepThroughStep !== undefined && existsSync(path)) cutAfter(path, keepThroughStep);
    this.fd = withIo(path, "open the metrics log", () => openSync(path, append ? "a" : "w"));
  }

  /** NaN and ±Infinity become null, as JSON.stringify does. */
  write(record: MetricsRecord): void {
    if (this.fd === null) throw new Error(`MetricsLog ${this.path}: write after close`);
    const buf = Buffer.from(JSON.stringify(record) + "\n", "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
  }

  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }
}

function cutAfter(path: string, step: number): void {
  const lines = readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "");
  const kept = lines.filter((line) => {
    let r: MetricsRecord;
    try {
      r = JSON.parse(line) as MetricsRecord;
    } catch {
      return false; // a line cut short by the kill
    }
    if (typeof r.step !== "number") return true;
    return r.kind === "train" ? r.step <= step : r.step < step;
  });
  writeFileAtomic(path, kept.map((l) => `${l}\n`).join(""));
}
