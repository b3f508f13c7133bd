// `slimtune export`: a model (with an optional adapter) for another runtime — a GGUF file for
// llama.cpp (or a GGUF LoRA adapter), an ONNX folder for transformers.js, a GPTQ v2 folder for
// GPTQModel, or the adapter merged into a Hugging Face folder (--format hf).

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { deployedModel } from "../../export/deploy.js";
import { GGUF_DTYPES, type GgufDtype, type PrunedLayout, exportGguf } from "../../export/gguf/model.js";
import { exportGgufLora } from "../../export/gguf/lora.js";
import { ONNX_DTYPES, type OnnxDtype, exportOnnx } from "../../export/onnx/index.js";
import { isPeftAdapter } from "../../formats/peft.js";
import { exportGptqV2 } from "../../export/gptq-v2.js";
import { HF_DTYPES, type HfDtype, exportHfFolder } from "../../export/hf-folder.js";
import { loadBase } from "../../models/load.js";
import { printJson, runAction } from "../args.js";
import { loadersNote } from "../pruned-model-notes.js";
import { type ChangeGroup, type MeasuredChanges, describeChanges, groupChanges, measureChanges } from "../../export/changes.js";
import { tokenizeFile } from "../../data/text-file.js";
import { loadTokenizer } from "../../formats/tokenizer.js";

/** --data: a few windows are enough to tell a harmless change from a harmful one. */
const KL_WINDOWS = 4;
const KL_CTX = 128;

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  const v = value ?? fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new SlimtuneError("E_ARG", `--${flag} "${v}" is not one of ${allowed.join(", ")}`);
  return v as T;
}

export default defineCommand({
  meta: { name: "export", description: "Write a model for llama.cpp (--format gguf), transformers.js (--format onnx), GPTQModel (--format gptq-v2), or with its adapter merged as a Hugging Face folder (--format hf)" },
  args: {
    format: { type: "string", description: "gguf, onnx, gptq-v2 (a GPTQ folder with v2 zero points: what GPTQModel loads for an asymmetric model), or hf (--adapter merged into the model: a float folder, or the quantized folder at the base's bits for PEQA)" },
    model: { type: "string", description: "Model folder (float or quantized) or a .gguf file" },
    adapter: { type: "string", description: "Adapter folder (LoRA, QLoRA, PEQA) or FineGates run: merged in; for gguf a LoRA adapter is written as a GGUF LoRA unless --merge" },
    merge: { type: "boolean", description: "gguf: merge a LoRA adapter into the model instead of writing a GGUF LoRA adapter" },
    dtype: { type: "string", description: "gguf: one type for every matrix (f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q3_k, q4_k, q5_k), llama.cpp's mixes (q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k), or layer-bits (each quantized layer at the k-quant of its own bits); onnx: fp32, fp16, q2, q4, q8 (q2/q4/q8 also quantize the embedding and LM head); hf: f32, f16, rtn (LoRA on a quantized base re-quantized at the base's bits). Default: what the model is (a quantized model at its own bits, a float model as float); a dtype that changes the weights prints each change" },
    data: { type: "string", description: "Text file: measure each change the export makes as KL to the source on its first 4 windows of 128 tokens" },
    pruned: { type: "string", description: "gguf, per-layer widths: deci (llama.cpp's per-layer architecture, default) or pad (zero-pad to uniform widths)" },
    out: { type: "string", description: "gguf: the output .gguf file; onnx, gptq-v2, hf: the output folder" },
    json: { type: "boolean", description: "Print one JSON object describing what was written" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const format = oneOf("format", args.format, ["gguf", "onnx", "gptq-v2", "hf"] as const, "gguf");
      if (!args.model) throw new SlimtuneError("E_ARG", "--model is required; see slimtune export --help");
      if (!args.out) throw new SlimtuneError("E_ARG", "--out is required: a .gguf file for --format gguf, a folder for --format onnx, gptq-v2 or hf");
      const base = loadBase(args.model);
      if (format === "hf") {
        const dtype = args.dtype === undefined ? undefined : oneOf<HfDtype>("dtype", args.dtype, HF_DTYPES, "f32");
        const r = exportHfFolder(base, args.adapter, args.out, { ...(dtype ? { dtype } : {}), keepDecoded: args.data !== undefined });
        const measured = args.data && r.changes.length > 0 ? await measureChanges(r.deployed.base, r.changes, tokenizeFile(args.data, await loadTokenizer(args.model), KL_WINDOWS * KL_CTX), KL_CTX) : null;
        const groups = measured?.groups ?? groupChanges(r.changes);
        report(
          args.json,
          { format: "hf", out: args.out, dtype: dtype ?? "own", merged: r.deployed.merged, holds: r.holds, files: r.files, bytes: r.bytes, changes: groups, ...(measured ? { total_kl: measured.totalKl, kl_tokens: measured.tokens } : {}) },
          [
            `wrote ${r.deployed.description} as a Hugging Face folder in ${args.out} (${r.holds}, ${r.files.length} files, ${r.bytes} bytes)`,
            // A pruned merge (FineGates) has per-layer widths, which stock transformers does not load.
            ...(r.deployed.base.model.config.layerShapes ? [`the folder has ${loadersNote(r.deployed.base.model.config)}`] : []),
            ...changeLines(groups, measured, args.data),
          ].join("\n"),
        );
        return;
      }
      if (format === "gptq-v2") {
        if (args.dtype !== undefined) throw new SlimtuneError("E_ARG", "--dtype does not apply to --format gptq-v2: the folder keeps the model's codes as they are");
        const deployed = deployedModel(base, args.adapter);
        const r = exportGptqV2(deployed.base, args.out);
        report(args.json, { format: "gptq-v2", out: args.out, layers: r.layers, sym: r.symmetric }, `wrote ${deployed.description} as a GPTQ v2 folder in ${args.out} (${r.layers} layers, codes kept; GPTQModel loads it${r.symmetric ? "" : ", vLLM does not: give vLLM the v1 folder slimtune quantize writes"})`);
        return;
      }
      if (format === "gguf") {
        const dtype = args.dtype === undefined ? undefined : oneOf<GgufDtype>("dtype", args.dtype, GGUF_DTYPES, "f32");
        const pruned = oneOf<PrunedLayout>("pruned", args.pruned, ["deci", "pad"], "deci");
        if (fs.statSync(args.out, { throwIfNoEntry: false })?.isDirectory()) throw new SlimtuneError("E_ARG", "--out is a folder; give the .gguf file to write", args.out);
        if (args.adapter && isPeftAdapter(args.adapter) && !args.merge) {
          const r = exportGgufLora(base, args.adapter, args.out, { dtype: dtype === "f16" ? "f16" : "f32" });
          report(args.json, { format: "gguf-lora", out: args.out, ...r }, `wrote the LoRA adapter as ${args.out} (${r.tensors} tensors, alpha ${r.alpha}); load it on the base model's GGUF`);
          return;
        }
        const deployed = deployedModel(base, args.adapter);
        const r = exportGguf(deployed.base, args.model, args.out, { ...(dtype ? { dtype } : {}), pruned, name: path.basename(args.model), keepDecoded: args.data !== undefined });
        const measured = args.data && r.changes.length > 0 ? await measureChanges(deployed.base, r.changes, tokenizeFile(args.data, await loadTokenizer(args.model), KL_WINDOWS * KL_CTX), KL_CTX) : null;
        const groups = measured?.groups ?? groupChanges(r.changes);
        const types = Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(", ");
        const lines = [`wrote ${deployed.description} as ${args.out} (${r.architecture}, ${r.tensors} tensors: ${types}${r.keptCodes ? `; ${r.keptCodes} layers' codes kept` : ""})`, ...r.warnings.map((w) => `warning: ${w}`), ...changeLines(groups, measured, args.data)];
        report(
          args.json,
          { format: "gguf", out: args.out, dtype: dtype ?? "own", architecture: r.architecture, tensors: r.tensors, types: r.types, kept_codes: r.keptCodes, kept_max_abs_change: r.keptMaxAbsChange, warnings: r.warnings, changes: groups, ...(measured ? { total_kl: measured.totalKl, kl_tokens: measured.tokens } : {}) },
          lines.join("\n"),
        );
        return;
      }
      const dtype = args.dtype === undefined ? undefined : oneOf<OnnxDtype>("dtype", args.dtype, ONNX_DTYPES, "fp32");
      const deployed = deployedModel(base, args.adapter);
      const r = await exportOnnx(deployed.base, args.model, args.out, { ...(dtype ? { dtype } : {}), keepDecoded: args.data !== undefined });
      const measured = args.data && r.changes.length > 0 ? await measureChanges(deployed.base, r.changes, tokenizeFile(args.data, await loadTokenizer(args.model), KL_WINDOWS * KL_CTX), KL_CTX) : null;
      const groups = measured?.groups ?? groupChanges(r.changes);
      report(
        args.json,
        { format: "onnx", out: args.out, dtype: r.dtype, file: r.modelFile, ...(r.dataFile ? { data_file: r.dataFile } : {}), bytes: r.bytes, changes: groups, ...(measured ? { total_kl: measured.totalKl, kl_tokens: measured.tokens } : {}) },
        [`wrote ${deployed.description} for transformers.js in ${args.out} (${r.modelFile}, dtype "${r.dtype}"${dtype ? "" : ", the model's own"})`, ...changeLines(groups, measured, args.data)].join("\n"),
      );
    }),
});

function changeLines(groups: ChangeGroup[], measured: MeasuredChanges | null, data: string | undefined): string[] {
  if (groups.length === 0) return [];
  const lines = [`what the export changed${measured ? ` (KL measured on ${measured.tokens} tokens of ${data})` : " (pass --data FILE to measure each change as KL to the source)"}:`, ...describeChanges(groups)];
  if (measured) lines.push(`  all changes together: KL to the source ${measured.totalKl.toExponential(3)} nats/token`);
  return lines;
}

function report(json: boolean | undefined, value: Record<string, unknown>, line: string): void {
  if (json) printJson(value);
  else process.stdout.write(`${line}\n`);
}
