// File-system failures as typed errors: every errno a user can meet (permission, disk full, a file
// where a folder belongs, a FIFO or device where a file belongs, symlink loops) names the path and
// what to do, instead of a Node stack trace.

import fs from "node:fs";
import { SlimtuneError } from "./errors.js";

const fixes: Record<string, string> = {
  EACCES: "permission denied; check the file's permissions (chmod) or run as a user who may access it",
  EPERM: "operation not permitted; check the file's permissions and owner",
  ENOSPC: "the disk is full; free space or choose a path on another disk",
  EDQUOT: "the disk quota is exhausted; free space or choose a path on another disk",
  EROFS: "the file system is read-only; choose a writable path",
  EEXIST: "already exists; choose another path or remove it",
  EISDIR: "is a folder where a file was expected; pass the file's path",
  ENOTDIR: "a part of this path is a file where a folder was expected; fix the path",
  ELOOP: "too many symbolic links (a symlink loop?); fix the links",
  ENAMETOOLONG: "the path is too long; choose a shorter one",
  EMFILE: "too many open files; raise the limit (ulimit -n) or close other programs",
  ENFILE: "too many open files on this system; close other programs",
  EIO: "the device reported an I/O error; check the disk",
};

/** Turns a Node file-system error into a SlimtuneError naming the path; SlimtuneErrors pass through. */
export function ioError(err: unknown, file: string, doing: string): SlimtuneError {
  if (err instanceof SlimtuneError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "ENOENT") return new SlimtuneError("E_NOT_FOUND", `does not exist (while ${doing})`, file);
  const fix = e?.code ? fixes[e.code] : undefined;
  if (fix) return new SlimtuneError("E_IO", `cannot ${doing}: ${fix} (${e.code})`, file);
  return new SlimtuneError("E_IO", `cannot ${doing}: ${(e?.message ?? String(err)).slice(0, 200)}`, file);
}

/** Runs a file-system operation, rethrowing its failure as a typed error. */
export function withIo<T>(file: string, doing: string, op: () => T): T {
  try {
    return op();
  } catch (err) {
    throw ioError(err, file, doing);
  }
}

/**
 * Checks that `file` is a regular file before anything opens it: opening a FIFO blocks forever and a
 * device reads without end. Returns its size in bytes.
 */
export function regularFileSize(file: string, what: string): number {
  const st = withIo(file, `read the ${what}`, () => fs.statSync(file));
  if (st.isDirectory()) throw new SlimtuneError("E_IO", `is a folder; pass the ${what} file itself`, file);
  if (!st.isFile()) throw new SlimtuneError("E_IO", `is not a regular file (a FIFO, socket or device); pass the ${what} as an ordinary file`, file);
  return st.size;
}
