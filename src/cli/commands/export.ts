// `slimtune export`: a model (with an optional adapter) for another runtime — a GGUF file for
// llama.cpp (or a GGUF LoRA adapter), or an ONNX folder for transformers.js.

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { deployedModel } from "../../export/deploy.js";
import { GGUF_DTYPES, type GgufDtype, type PrunedLayout, exportGguf } from "../../export/gguf/model.js";
import { exportGgufLora } from "../../export/gguf/lora.js";
import { ONNX_DTYPES, type OnnxDtype, exportOnnx } from "../../export/onnx/index.js";
import { isPeftAdapter } from "../../formats/peft.js";
import { loadBase } from "../../models/load.js";
import { printJson, runAction } from "../args.js";

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  const v = value ?? fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new SlimtuneError("E_ARG", `--${flag} "${v}" is not one of ${allowed.join(", ")}`);
  return v as T;
}

export default defineCommand({
  meta: { name: "export", description: "Write a model for llama.cpp (--format gguf) or transformers.js (--format onnx)" },
  args: {
    format: { type: "string", description: "gguf or onnx" },
    model: { type: "string", description: "Model folder (float or quantized) or a .gguf file" },
    adapter: { type: "string", description: "Adapter folder (LoRA, QLoRA, PEQA): merged in; for gguf a LoRA adapter is written as a GGUF LoRA unless --merge" },
    merge: { type: "boolean", description: "gguf: merge a LoRA adapter into the model instead of writing a GGUF LoRA adapter" },
    dtype: { type: "string", description: "gguf: f32, f16, q8_0, q4_0 (default f32); onnx: fp32, fp16, q4, q8 (default fp32)" },
    pruned: { type: "string", description: "gguf, per-layer widths: deci (llama.cpp's per-layer architecture, default) or pad (zero-pad to uniform widths)" },
    out: { type: "string", description: "gguf: the output .gguf file; onnx: the output folder" },
    json: { type: "boolean", description: "Print one JSON object describing what was written" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const format = oneOf("format", args.format, ["gguf", "onnx"] as const, "gguf");
      if (!args.model) throw new SlimtuneError("E_ARG", "--model is required; see slimtune export --help");
      if (!args.out) throw new SlimtuneError("E_ARG", "--out is required: a .gguf file for --format gguf, a folder for --format onnx");
      const base = loadBase(args.model);
      if (format === "gguf") {
        const dtype = oneOf<GgufDtype>("dtype", args.dtype, GGUF_DTYPES, "f32");
        const pruned = oneOf<PrunedLayout>("pruned", args.pruned, ["deci", "pad"], "deci");
        if (fs.statSync(args.out, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_ARG", "--out is a folder; give the .gguf file to write", args.out);
        if (args.adapter && isPeftAdapter(args.adapter) && !args.merge) {
          const r = exportGgufLora(base, args.adapter, args.out, { dtype: dtype === "f16" ? "f16" : "f32" });
          report(args.json, { format: "gguf-lora", out: args.out, ...r }, `wrote the LoRA adapter as ${args.out} (${r.tensors} tensors, alpha ${r.alpha}); load it on the base model's GGUF`);
          return;
        }
        const deployed = deployedModel(base, args.adapter);
        const r = exportGguf(deployed.base, args.model, args.out, { dtype, pruned, name: path.basename(args.model) });
        report(args.json, { format: "gguf", out: args.out, dtype, architecture: r.architecture, tensors: r.tensors, kept_codes: r.keptCodes }, `wrote ${deployed.description} as ${args.out} (${r.architecture}, ${dtype}, ${r.tensors} tensors${r.keptCodes ? `, ${r.keptCodes} layers' codes kept` : ""})`);
        return;
      }
      const dtype = oneOf<OnnxDtype>("dtype", args.dtype, ONNX_DTYPES, "fp32");
      const deployed = deployedModel(base, args.adapter);
      const r = await exportOnnx(deployed.base, args.model, args.out, { dtype });
      report(args.json, { format: "onnx", out: args.out, dtype, file: r.modelFile, bytes: r.bytes }, `wrote ${deployed.description} for transformers.js in ${args.out} (${r.modelFile}, dtype "${dtype}")`);
    }),
});

function report(json: boolean | undefined, value: Record<string, unknown>, line: string): void {
  if (json) printJson(value);
  else process.stdout.write(`${line}\n`);
}
