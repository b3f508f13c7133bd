// exportOnnx: the transformers.js folder (encode.ts builds its files as bytes) written to a path,
// the folder replaced atomically; the tokenizer files are read from the model's source folder (or
// rebuilt from a GGUF file's metadata), as every folder slimtune writes copies them.

import fs from "node:fs";
import path from "node:path";

import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { TOKENIZER_FILES, isGgufFile, readTokenizerFiles } from "../../formats/tokenizer.js";
import type { LoadedBase } from "../../models/load.js";
import { type OnnxExportOptions, type OnnxExportReport, type OnnxFolderFile, type TokenizerFileBytes, encodeOnnxFolder, tokenizerFilesFromObjects } from "./encode.js";

export { EXTERNAL_DATA_ABOVE, ONNX_DTYPES, ONNX_FILE, encodeOnnxFolder, tokenizerFilesFromObjects } from "./encode.js";
export type { OnnxDtype, OnnxExportOptions, OnnxExportReport, OnnxFolderFile, TokenizerFileBytes } from "./encode.js";

export async function exportOnnx(base: LoadedBase, source: string, outDir: string, opts: OnnxExportOptions): Promise<OnnxExportReport> {
  const { files, report } = encodeOnnxFolder(base, tokenizerFilesOf(source), opts);
  replaceDirAtomic(outDir, (tmp) => {
    for (const file of files) writeFolderFile(tmp, file);
  });
  return report;
}

/** The tokenizer files `source` has (a folder's, copied as they are; a GGUF file's rebuilt from its metadata). */
function tokenizerFilesOf(source: string): TokenizerFileBytes {
  if (isGgufFile(source)) {
    const { json, config } = readTokenizerFiles(source);
    return tokenizerFilesFromObjects(json, config);
  }
  const out = new Map<string, Uint8Array>();
  for (const name of TOKENIZER_FILES) {
    const file = path.join(source, name);
    if (fs.existsSync(file)) out.set(name, fs.readFileSync(file));
  }
  return out;
}

function writeFolderFile(dir: string, file: OnnxFolderFile): void {
  const target = path.join(dir, ...file.name.split("/"));
  fs.mkdirSync(path.dirname(target), { recursive: true });
  if (file.chunks.length === 1) {
    writeFileAtomic(target, file.chunks[0]!);
    return;
  }
  // External data: its parts one after another, never joined (it may pass what one buffer holds).
  const fd = fs.openSync(target, "w");
  try {
    for (const p of file.chunks) for (let done = 0; done < p.byteLength; ) done += fs.writeSync(fd, p, done);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
