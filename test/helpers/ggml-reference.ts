// ggml's own quantize_row_*_ref and dequantize_row_* (node-llama-cpp's prebuilt libggml-base.so, called
// from Python's ctypes by ggml-reference.py): what slimtune's ggml codecs must equal byte for byte.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import type { GgmlTypeName } from "../../src/formats/gguf/ggml-types.js";
import { scratchDir } from "./paths.js";

const SCRIPT = new URL("./ggml-reference.py", import.meta.url).pathname;

/** The folder of node-llama-cpp's linux-x64 CPU libraries, or null where they (or python3) are not installed. */
export function llamaCppBins(): string | null {
  if (process.platform !== "linux" || process.arch !== "x64") return null;
  try {
    const main = createRequire(import.meta.url).resolve("@node-llama-cpp/linux-x64");
    const bins = path.join(path.dirname(main), "..", "bins", "linux-x64");
    execFileSync("python3", ["-c", "import ctypes"], { stdio: "ignore" });
    return fs.existsSync(path.join(bins, "libggml-base.so")) ? bins : null;
  } catch {
    return null;
  }
}

/** libggml-base.so of node-llama-cpp's linux-x64 CPU build, or null where it is not installed. */
export function ggmlBaseLibrary(): string | null {
  const bins = llamaCppBins();
  return bins ? path.join(bins, "libggml-base.so") : null;
}

/** llama.cpp's llama_model_quantize of `src` into `dst` as LLAMA_FTYPE `ftype` (no importance matrix). */
export function llamaQuantize(bins: string, src: string, dst: string, ftype: number): void {
  execFileSync("python3", [new URL("./llama-quantize.py", import.meta.url).pathname, bins, src, dst, String(ftype)], { stdio: "ignore" });
}

/** ggml's C names: q4_K, q8_0, … */
const cName = (t: GgmlTypeName) => t.toLowerCase().replace(/_k$/, "_K");

export function ggmlQuantize(lib: string, type: GgmlTypeName, values: Float32Array): Uint8Array {
  const dir = scratchDir("ggml-ref");
  fs.writeFileSync(path.join(dir, "in"), new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  execFileSync("python3", [SCRIPT, lib, "quantize", cName(type), path.join(dir, "in"), path.join(dir, "out"), String(values.length)]);
  return new Uint8Array(fs.readFileSync(path.join(dir, "out")));
}

export function ggmlDequantize(lib: string, type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const dir = scratchDir("ggml-ref");
  fs.writeFileSync(path.join(dir, "in"), bytes);
  execFileSync("python3", [SCRIPT, lib, "dequantize", cName(type), path.join(dir, "in"), path.join(dir, "out"), String(count)]);
  const out = fs.readFileSync(path.join(dir, "out"));
  return new Float32Array(out.buffer, out.byteOffset, count);
}
