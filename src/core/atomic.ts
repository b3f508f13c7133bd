// Crash-safe writes: a file or a whole folder appears complete under its final name, or not at all.

import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { SlimtuneError } from "./errors.js";
import { ioError } from "./io.js";
import { tempSiblingPrefix } from "./output.js";

// The one naming scheme of temp siblings (core/output.ts), so a dead run's leftovers are recognised.
function siblingName(target: string, tag: "tmp" | "old"): string {
  return `${tempSiblingPrefix(target, tag)}${randomBytes(4).toString("hex")}`;
}

// Without fsyncing the directory a crash right after rename can still lose the new entry.
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `data` to `filePath` via a temp file in the same directory, fsync and rename. */
export function writeFileAtomic(filePath: string, data: Uint8Array | string | readonly Uint8Array[]): void {
  const dir = path.dirname(filePath);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw ioError(err, dir, "create the folder");
  }
  const tmp = siblingName(filePath, "tmp");
  const chunks = typeof data === "string" ? [Buffer.from(data, "utf8")] : data instanceof Uint8Array ? [data] : data;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "w");
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) {
        written += fs.writeSync(fd, chunk, written, chunk.byteLength - written);
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, filePath);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    // A write to a file descriptor fails without a path (ENOSPC, EIO): name the file here.
    throw ioError(err, filePath, "write the file");
  }
  fsyncDir(dir);
}

/**
 * Builds a folder in a sibling temp dir via `fill`, then swaps it in for `finalDir`.
 * If `fill` throws, the temp dir is removed and `finalDir` is left untouched.
 */
export function replaceDirAtomic(finalDir: string, fill: (tmpDir: string) => void): void {
  const existing = fs.statSync(finalDir, { throwIfNoEntry: false });
  if (existing && !existing.isDirectory()) {
    throw new SlimtuneError(
      "E_ARG",
      `output folder "${finalDir}" exists and is a file, not a folder; choose another output path or remove the file`,
    );
  }
  const parent = path.dirname(finalDir);
  const tmpDir = siblingName(finalDir, "tmp");
  try {
    fs.mkdirSync(parent, { recursive: true });
    fs.mkdirSync(tmpDir);
  } catch (err) {
    throw ioError(err, finalDir, "create the output folder");
  }
  try {
    fill(tmpDir);
  } catch (err) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  if (!existing) {
    fs.renameSync(tmpDir, finalDir);
    fsyncDir(parent);
    return;
  }
  // rename() cannot replace a non-empty directory, so move the old one aside first.
  const oldDir = siblingName(finalDir, "old");
  fs.renameSync(finalDir, oldDir);
  try {
    fs.renameSync(tmpDir, finalDir);
  } catch (err) {
    fs.renameSync(oldDir, finalDir);
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  fsyncDir(parent);
  fs.rmSync(oldDir, { recursive: true, force: true });
}
