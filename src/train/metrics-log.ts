// Append-only JSONL metrics file, written synchronously so a killed run loses at most one line.

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export type MetricsRecord = Record<string, number | string | boolean | null>;

export class MetricsLog {
  readonly path: string;
  private fd: number | null;

  /** append: false truncates an existing file (a fresh run); true continues it (a resumed run). */
  constructor(path: string, { append }: { append: boolean }) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, append ? "a" : "w");
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
