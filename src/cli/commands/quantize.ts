// `slimtune quantize`: round-to-nearest (GPTQ checkpoint) or NF4 quantization of a model folder, with a size report.

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { linearLayers } from "../../arch/llama/shapes.js";
import { SlimtuneError } from "../../core/errors.js";
import { readWeightMap } from "../../formats/folder-tensors.js";
import { readLlamaConfig } from "../../formats/hf-config.js";
import { isQuantizedFolder, saveQuantizedFolder } from "../../formats/quantized/index.js";
import { LlamaModel } from "../../models/llama/model.js";
import { defaultNf4BlockSize } from "../../quant/kinds/nf4.js";
import type { RtnStats } from "../../quant/kinds/rtn.js";
import { quantizeModel } from "../../quant/quantize-model.js";
import { sizeReport } from "../../quant/size.js";
import { checkQuantSpec, isQuantBits, resolveGroupSize } from "../../quant/spec.js";
import type { GridScheme, QuantSpec } from "../../quant/types.js";
import { printJson, requiredArg, runAction } from "../args.js";
import { createProgress } from "../progress.js";
import { describeAllocation, describeReportFiles, mixedPrecisionArgs, mixedPrecisionFromArgs, parseBudget } from "../mixed-precision-args.js";
import { writeMixedPrecisionReport } from "../../recipes/mixed-precision/index.js";
import { allocationPlan } from "../../quant/budget.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { type MethodResult, parseQuantizeMethod, quantizeByMethod, quantizeMethodArgs } from "../quantize-methods.js";
import { writeRunReport } from "../../report/run-report.js";
import { gptqOntoTarget, quantizeTargetArgs } from "../quantize-target.js";

function parseScheme(value: string | undefined): GridScheme {
  const scheme = value ?? "rtn";
  if (scheme !== "rtn" && scheme !== "nf4") {
    throw new SlimtuneError("E_ARG", `--scheme "${scheme}" is unknown; use rtn (integer codes, written as a GPTQ checkpoint) or nf4 (QLoRA's 4-bit NormalFloat)`);
  }
  return scheme;
}

function parseBits(value: string | undefined): QuantSpec["bits"] {
  const bits = Number(value ?? "4");
  if (!isQuantBits(bits)) throw new SlimtuneError("E_ARG", `--bits "${value}" is not supported; use 2, 3, 4 or 8 (the widths GPTQ loaders accept)`);
  return bits;
}

function parseGroupSize(value: string | undefined, scheme: GridScheme): QuantSpec["groupSize"] {
  if (value === undefined || value === "") return scheme === "nf4" ? defaultNf4BlockSize : "channel";
  if (value === "channel" || value === "-1") return "channel";
  const g = Number(value);
  if (!Number.isInteger(g) || g < 1) {
    throw new SlimtuneError("E_ARG", `--group-size "${value}" must be a positive integer (32, 64, 128, …) or "channel"`);
  }
  return g;
}

/** Bytes of the float model's weights: model.safetensors, or every shard listed in the index. */
function floatWeightBytes(dir: string): number {
  const single = path.join(dir, "model.safetensors");
  if (fs.existsSync(single)) return fs.statSync(single).size;
  let total = 0;
  for (const shard of new Set(readWeightMap(dir).values())) total += fs.statSync(shard).size;
  return total;
}

function fmtBytes(n: number): string {
  return n.toLocaleString("en-US");
}

export default defineCommand({
  meta: { name: "quantize", description: "Quantize every linear layer of a model folder (RTN → GPTQ checkpoint, or NF4) and report its size" },
  args: {
    model: { type: "string", description: "Hugging Face model folder (config.json, model.safetensors, tokenizer.json)" },
    bits: { type: "string", description: "Bits per weight: 2, 3, 4 or 8 (nf4: 4)", default: "4" },
    "group-size": { type: "string", description: 'Input columns per scale: 32, 64, 128 … or "channel" (default: channel for rtn, 64 for nf4)' },
    scheme: { type: "string", description: "rtn (integer codes, written as a GPTQ v1 checkpoint) or nf4 (slimtune-nf4 folder)", default: "rtn" },
    sym: { type: "boolean", description: "Symmetric RTN: zero point fixed at 2^(bits-1)" },
    out: { type: "string", description: "Output folder (replaced atomically)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
    // Mixed precision under a budget (rtn only): per-layer bits instead of --bits.
    ...mixedPrecisionArgs,
    // After the mixed-precision flags: --rank and --seed keep the methods' defaults ("" = chosen by
    // the method), which the budget's trials read as their own defaults (LoRA rank 8, seed 0).
    ...quantizeMethodArgs,
    ...quantizeTargetArgs,
    rank: { type: "string", description: "reallm: fixed rank of L1·L2 (default: the largest the budget leaves); lqlora: rank of the LoRA part (default 16); --budget-mb/--avg-bits with --trials: LoRA rank of each trial's recovery (default 8)", default: "" },
    threads: { type: "string", description: "ONNX Runtime threads for importance (default: all cores)" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const modelDir = requiredArg("model", args.model);
      const outDir = requiredArg("out", args.out);
      const scheme = parseScheme(args.scheme);
      const method = parseQuantizeMethod(args.method);
      const spec: QuantSpec = { scheme, bits: parseBits(args.bits), groupSize: parseGroupSize(args["group-size"], scheme), symmetric: Boolean(args.sym) };
      checkQuantSpec(spec);
      const stat = fs.statSync(modelDir, { throwIfNoEntry: false });
      if (!stat) throw new SlimtuneError("E_NOT_FOUND", `--model "${modelDir}" does not exist; pass a Hugging Face model folder with config.json and model.safetensors`);
      if (!stat.isDirectory()) throw new SlimtuneError("E_ARG", `--model "${modelDir}" is a file; pass the model folder that contains config.json and model.safetensors`);
      if (isQuantizedFolder(modelDir)) {
        throw new SlimtuneError("E_ARG", `--model "${modelDir}" is already quantized (its config has a quantization_config); pass the float model it came from`);
      }
      if (path.resolve(outDir) === path.resolve(modelDir)) {
        throw new SlimtuneError("E_ARG", `--out "${outDir}" is the --model folder; write the quantized model to a new folder`);
      }
      // Check every layer's K before loading weights, so a bad --group-size fails at once.
      const config = readLlamaConfig(modelDir);
      const layers = linearLayers(config);
      for (const l of layers) resolveGroupSize(spec, l.inFeatures, l.path);

      const started = Date.now();
      const model = LlamaModel.load(modelDir);
      if (args.target !== undefined) {
        if (method !== "gptq") throw new SlimtuneError("E_ARG", "--target calibrates GPTQ onto a ggml grid: use it with --method gptq");
        const t = await gptqOntoTarget(String(args.target), modelDir, model, outDir, args);
        await writeRunReport({ command: "quantize", out: outDir, options: args, summary: { method, ...t.report } });
        if (args.json) printJson({ out: outDir, method, seconds: (Date.now() - started) / 1000, ...t.report });
        else process.stdout.write(`${t.lines.join("\n")}\n`);
        return;
      }
      const budget = parseBudget(args);
      if (budget && method !== "rtn") throw new SlimtuneError("E_ARG", `--budget-mb/--avg-bits choose per-layer bits for RTN; --method ${method} takes one --bits. Drop --method or the budget`);
      if (budget && scheme !== "rtn") throw new SlimtuneError("E_ARG", "--budget-mb/--avg-bits choose per-layer bits, which only --scheme rtn (GPTQ) stores; drop --scheme nf4");
      const mixed = budget ? await mixedPrecisionFromArgs(args, budget, model, modelDir, await loadTokenizer(modelDir), spec, { trials: 0 }) : null;
      const stats: RtnStats = { groups: 0, zeroPointsAtZero: 0 };
      let byMethod: MethodResult | null = null;
      let qm;
      if (method === "rtn") {
        const progress = createProgress("quantize layers", layers.length);
        qm = quantizeModel(model, mixed ? allocationPlan(mixed.budgetModel, mixed.allocation) : spec, (done) => progress.update(done), stats);
        progress.stop();
      } else {
        byMethod = await quantizeByMethod(method, modelDir, model, spec, args, stats);
        qm = byMethod.qm;
      }
      saveQuantizedFolder(outDir, qm);
      byMethod?.afterSave?.(outDir);
      const reportFiles = mixed ? writeMixedPrecisionReport(outDir, mixed, `${path.basename(modelDir)}: held-out loss against stored bytes`) : [];
      const report = sizeReport(qm);
      const fileBytes = fs.statSync(path.join(outDir, "model.safetensors")).size;
      const floatBytes = floatWeightBytes(modelDir);
      const format = method === "reallm" ? "slimtune-reallm" : scheme === "nf4" ? "slimtune-nf4" : "gptq";
      const widened = scheme === "rtn" && !spec.symmetric ? stats.zeroPointsAtZero : 0;
      const seconds = (Date.now() - started) / 1000;
      const summary = {
        model: modelDir,
        out: outDir,
        format,
        method,
        ...spec,
        fileBytes,
        floatFileBytes: floatBytes,
        ratio: floatBytes / fileBytes,
        bitsPerWeight: report.bitsPerWeight,
        bitsPerWeightModel: report.bitsPerWeightModel,
        zeroPointsWidened: widened,
        groups: stats.groups,
        seconds,
        report,
        ...(byMethod ? { methodReport: byMethod.report } : {}),
        ...(mixed ? { mixedPrecision: { mode: mixed.mode, allocation: mixed.allocation, units: mixed.units, bytes: mixed.bytes, avgBits: mixed.avgBits, trials: mixed.trials.length, files: reportFiles } } : {}),
      };
      await writeRunReport({ command: "quantize", out: outDir, options: args, summary, parameters: report.quantizedWeights + report.floatValues });
      if (args.json) {
        printJson(summary);
        return;
      }
      const group = method === "reallm" ? "shapes chosen per matrix" : spec.groupSize === "channel" ? "per channel" : `groups of ${spec.groupSize}`;
      const bitsName = mixed ? "mixed-precision" : `${spec.bits}-bit`;
      const kind = method === "reallm" ? "ReALLM (low-rank + vector-quantized residual)" : scheme === "nf4" ? "NF4" : `${bitsName} ${spec.symmetric ? "symmetric" : "asymmetric"} ${method === "gptq" ? "GPTQ" : "RTN"}${method === "lqlora" ? " + LQ-LoRA low-rank part" : ""}`;
      const lines = [
        `quantized ${qm.linears.size} linear layers to ${kind}, ${group} → ${outDir} (${format}) in ${seconds.toFixed(1)} s`,
        `model.safetensors: ${fmtBytes(fileBytes)} bytes vs ${fmtBytes(floatBytes)} for the float model (${(floatBytes / fileBytes).toFixed(2)}× smaller)`,
        `quantized linears: ${report.bitsPerWeight.toFixed(3)} bits/weight with scales${scheme === "rtn" ? " and zeros" : ""}, ${report.bitsPerWeightAll.toFixed(3)} with everything stored (${fmtBytes(report.quantizedWeights)} weights); whole model: ${report.bitsPerWeightModel.toFixed(3)} bits/parameter (embeddings and norms stay float32)`,
      ];
      if (byMethod) lines.push(...byMethod.lines);
      if (mixed) lines.push(...describeAllocation(mixed), describeReportFiles(outDir, reportFiles));
      if (widened > 0) {
        lines.push(`zero points: ${widened} of ${stats.groups} groups had z = 0, widened to z = 1 so GPTQ v1 loaders read them correctly`);
      }
      process.stdout.write(`${lines.join("\n")}\n`);
    }),
});
