// Node only (runtime.ts imports it on demand, never in a page): a graph written as an ONNX file whose
// large initializers are ONNX external data, in a private temporary folder that is removed on every
// path. ONNX Runtime then reads the weights from the file into its own tensors, so no in-memory
// ModelProto holds a second copy of them while the session is created, and the host never builds
// one buffer of the whole model.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { withIo } from "../core/io.js";
import { processAlive } from "../core/process-alive.js";
export { collectGarbage } from "./collect-garbage.js";
import type { ExternalData } from "./onnx-writer.js";

/** Session folders are named slimtune-session-<pid>-<random>, so a later run can tell whose they were. */
const FOLDER_PREFIX = "slimtune-session-";
const MODEL_FILE = "model.onnx";
const DATA_FILE = "model.onnx.data";
/** Each tensor starts on a page boundary, so a runtime may map it straight from the file. */
const ALIGN = 4096;

/**
 * Writes the model with `serialize` (which hands initializers of at least `minBytes` to the data
 * file as it meets them and returns the ModelProto's own bytes), then calls `use` with the model
 * file's path and the bytes of both files. The folder is removed when `use` settles, whether it resolved or threw.
 */
export async function withExternalDataFile<T>(minBytes: number, serialize: (external: ExternalData) => Uint8Array, use: (modelPath: string, bytesWritten: number) => Promise<T>): Promise<T> {
  const tmp = os.tmpdir();
  removeFoldersOfDeadRuns(tmp);
  const dir = withIo(tmp, "create a temporary folder for the session's ONNX file", () => fs.mkdtempSync(path.join(tmp, `${FOLDER_PREFIX}${process.pid}-`)));
  try {
    const dataPath = path.join(dir, DATA_FILE);
    const fd = withIo(dataPath, "create the session's external data file", () => fs.openSync(dataPath, "w"));
    let end = 0;
    let model: Uint8Array;
    try {
      model = serialize({
        location: DATA_FILE,
        minBytes,
        place(bytes) {
          const offset = Math.ceil(end / ALIGN) * ALIGN;
          writeAll(fd, dataPath, bytes, offset);
          end = offset + bytes.byteLength;
          return offset;
        },
      });
    } finally {
      fs.closeSync(fd);
    }
    const modelPath = path.join(dir, MODEL_FILE);
    withIo(modelPath, "write the session's ONNX file", () => fs.writeFileSync(modelPath, model));
    return await use(modelPath, model.byteLength + end);
  } finally {
    removeFolder(dir);
  }
}

/**
 * Removes session folders whose process no longer exists: a run killed while creating its session
 * (Ctrl-C, the OOM killer) never reached its `finally`. A folder of a live process is left alone.
 */
function removeFoldersOfDeadRuns(tmp: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(tmp);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = name.startsWith(FOLDER_PREFIX) ? /^(\d+)-/.exec(name.slice(FOLDER_PREFIX.length))?.[1] : undefined;
    if (pid === undefined || processAlive(Number(pid))) continue;
    try {
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    } catch {
      // Another user's folder, or one going away meanwhile: not ours to insist on.
    }
  }
}

/**
 * Removes the folder now; where the platform refuses while the runtime still maps the data file
 * (Windows keeps mapped files), at the latest when the process exits.
 */
function removeFolder(dir: string): void {
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  try {
    remove();
  } catch {
    process.once("exit", () => {
      try {
        remove();
      } catch {
        // Nothing is left to do at exit; the folder's name marks it as slimtune's.
      }
    });
  }
}

function writeAll(fd: number, file: string, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += withIo(file, "write the session's external data file", () => fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done));
  }
}
