// The web bundle: it builds, never carries onnxruntime-node, and the files it reaches that still
// import node:* (stubbed in the page) can only become fewer — a new one must be a deliberate
// change to this list (docs/architecture.md, "The platform seam").

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { buildWeb } from "../../scripts/build-web.mjs";
import { scratchDir } from "../helpers/paths.js";

/** Files holding path-level readers/writers beside the byte-level entry points the page uses. */
const STILL_IMPORTING_NODE = [
  "src/core/atomic.ts",
  "src/core/io.ts",
  "src/core/json.ts",
  "src/core/output.ts",
  "src/engine/collect-garbage.ts", // node:v8 and node:vm, reached only through session-file.ts (never run in the page)
  "src/engine/ort-binding.ts", // onnxruntime-node, imported only when no binding was chosen (never in the page)
  "src/engine/session-file.ts", // the external-data session file, imported only under onnxruntime-node (never in the page)
  "src/formats/folder-tensors.ts",
  "src/formats/gguf/reader.ts",
  "src/formats/hf-config.ts",
  "src/formats/hf-folder.ts",
  "src/formats/peft.ts",
  "src/formats/peqa-adapter.ts",
  "src/formats/safetensors.ts",
  "src/formats/tokenizer.ts",
  "src/methods/lora/index.ts",
  "src/models/llama/model.ts",
];

describe("the slimtune/web bundle", () => {
  it("builds with the page and onnxruntime-web's WASM, without onnxruntime-node, and no new node:* importer", async () => {
    const out = scratchDir("web-bundle");
    const { nodeImporters } = await buildWeb(out);
    const files = fs.readdirSync(out);
    for (const f of ["index.html", "page.js", "slimtune-web.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.jsep.wasm"]) expect(files).toContain(f);
    const bundle = fs.readFileSync(path.join(out, "slimtune-web.js"), "utf8");
    expect(bundle).not.toMatch(/onnxruntime_binding\.node|bin\/napi-v\d/);
    const unexpected = [...nodeImporters.keys()].filter((f) => !STILL_IMPORTING_NODE.includes(f));
    expect(unexpected, "a file the page bundles now imports node:* — give it a byte-level entry point instead").toEqual([]);
  });
});
