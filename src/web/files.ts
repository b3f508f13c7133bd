// Getting a model folder's files into bytes in a page: from an <input type=file> (a picked folder
// or several files) or fetched from a URL folder.

import { SlimtuneError } from "../core/errors.js";
import { TOKENIZER_FILES } from "../formats/tokenizer.js";

/**
 * The files the page keeps from a picked folder (others are skipped, never loaded): what
 * modelFromBytes reads, and every tokenizer file, which a transformers.js download carries as they are.
 */
export const MODEL_FILE_NAMES: readonly string[] = ["config.json", "model.safetensors", "model.safetensors.index.json", ...TOKENIZER_FILES];

/** Files a fetched folder may lack: fetchModelFiles skips them on HTTP 404. */
const OPTIONAL_FILES = TOKENIZER_FILES.filter((f) => f !== "tokenizer.json");

const isModelFile = (name: string) => MODEL_FILE_NAMES.includes(name) || /^model-\d+-of-\d+\.safetensors$/.test(name);

/** What a page's File gives (structural, so this compiles without the DOM types). */
export interface PickedFile {
  name: string;
  size: number;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** Picked files by base name (a folder's own files; files of its sub-folders are skipped). */
export async function filesFromPicked(files: Iterable<PickedFile & { webkitRelativePath?: string }>): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const f of files) {
    const depth = (f.webkitRelativePath ?? f.name).split("/").length;
    if (depth > 2 || !isModelFile(f.name)) continue;
    out.set(f.name, new Uint8Array(await f.arrayBuffer()));
  }
  if (out.size === 0) throw new SlimtuneError("E_NOT_FOUND", `none of the picked files is a model file (${MODEL_FILE_NAMES.join(", ")})`);
  return out;
}

/** Fetches a model folder served at `baseUrl` (ending in "/"); absent optional files are skipped. */
export async function fetchModelFiles(baseUrl: string, names: readonly string[] = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const name of names) {
    const res = await fetch(`${baseUrl}${name}`);
    if (res.status === 404 && OPTIONAL_FILES.includes(name)) continue;
    if (!res.ok) throw new SlimtuneError("E_IO", `fetching ${name} gave HTTP ${res.status}`, `${baseUrl}${name}`);
    out.set(name, new Uint8Array(await res.arrayBuffer()));
  }
  return out;
}
