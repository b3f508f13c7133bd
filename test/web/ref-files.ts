// The reference model's files as bytes (what the page fetches or a user picks), and the 4-bit spec the web tests use.

import fs from "node:fs";
import path from "node:path";
import { REF_MODEL } from "../helpers/paths.js";

export const SPEC = { scheme: "rtn", bits: 4, groupSize: 64, symmetric: false } as const;

export function refModelFiles(): Map<string, Uint8Array> {
  const names = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];
  return new Map(names.map((n) => [n, new Uint8Array(fs.readFileSync(path.join(REF_MODEL, n)))]));
}
