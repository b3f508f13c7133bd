// A folder of files as one .zip, for a page's single download (a browser saves one file per click;
// a transformers.js folder has a subfolder). fflate: plain JavaScript, no native code.

import { type Zippable, zipSync } from "fflate";

/** A file inside the zip by its path ("onnx/model.onnx") and its bytes in order. */
export interface ZipEntry {
  name: string;
  chunks: Uint8Array[];
}

/** Every entry's time in the zip: fixed, so the same files always give the same archive. */
const ZIP_TIME = new Date(Date.UTC(2024, 0, 1));

/** Weights (.onnx, .onnx_data, .safetensors, .gguf) are stored as they are: deflate gains little on floats and costs seconds. */
const STORED = /\.(onnx|onnx_data|safetensors|gguf)$/;

export function zipFiles(entries: readonly ZipEntry[]): Uint8Array {
  const tree: Zippable = {};
  for (const e of entries) tree[e.name] = [joined(e.chunks), { level: STORED.test(e.name) ? 0 : 6, mtime: ZIP_TIME }];
  return zipSync(tree);
}

function joined(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
