// `slimtune quantize --method gptq --target q4_k --out model.gguf`: GPTQ with its codes on the grid
// llama.cpp runs. Each linear layer whose rows are whole 256-value super-blocks is calibrated onto
// ggml's k-quant blocks (super-block scales and mins chosen as ggml's reference quantizer chooses
// them, then GPTQ's column-by-column rounding with error feedback onto that fixed grid); the result
// is written straight to a GGUF file — the k-quant blocks are the stored form (a GPTQ folder cannot
// hold k-quant mins), read by llama.cpp and by slimtune (`--model model.gguf`). Everything else is
// what `export --format gguf --dtype q4_k` writes: rows that are not whole super-blocks take
// llama.cpp's fallback type by ggml's reference quantizer (Q4_K → Q5_0), as do the embeddings.

import type { ArgDef } from "citty";
import { SlimtuneError } from "../core/errors.js";
import { calibrationWindows } from "../data/calibration.js";
import { tokenizeFile } from "../data/text-file.js";
import { exportGguf } from "../export/gguf/model.js";
import { fallbackType } from "../export/gguf/llama-mix.js";
import { GGML_TYPES, decodeRows, encodeRows } from "../formats/gguf/ggml-types.js";
import { type KQuantName, kQuantTarget } from "../formats/gguf/k-quants.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import { LlamaModel } from "../models/llama/model.js";
import { defaultGptqSettings } from "../quant/gptq.js";
import { gptqQuantizeModelOnBlocks } from "../recipes/gptq.js";
import { floatArg, intArg, requiredArg } from "./args.js";
import { createProgress } from "./progress.js";

export const GPTQ_TARGETS = ["q3_k", "q4_k", "q5_k"] as const;
type GptqTarget = (typeof GPTQ_TARGETS)[number];

export const quantizeTargetArgs = {
  target: { type: "string", description: `gptq: calibrate onto a ggml k-quant grid and write a GGUF file to --out: ${GPTQ_TARGETS.join(", ")}` },
} satisfies Record<string, ArgDef>;

export interface TargetResult {
  report: Record<string, unknown>;
  lines: string[];
}

export async function gptqOntoTarget(value: string, modelDir: string, model: LlamaModel, outFile: string, args: Record<string, unknown>): Promise<TargetResult> {
  if (!(GPTQ_TARGETS as readonly string[]).includes(value)) throw new SlimtuneError("E_ARG", `--target "${value}" is unknown; choose ${GPTQ_TARGETS.join(", ")}`);
  if (!outFile.toLowerCase().endsWith(".gguf")) throw new SlimtuneError("E_ARG", `--target writes a GGUF file: give --out a name ending in .gguf (got "${outFile}")`);
  if (args["act-order"]) throw new SlimtuneError("E_ARG", "--target: k-quant super-blocks hold contiguous columns, so GPTQ onto them cannot use --act-order; drop it");
  const target = value as GptqTarget;
  const name = target.toUpperCase() as KQuantName;
  const file = requiredArg("calib", args.calib as string | undefined);
  const samples = intArg("calib-samples", args["calib-samples"] as string | undefined, 128);
  const seq = intArg("calib-seq", args["calib-seq"] as string | undefined, 256, 2);
  const seed = intArg("calib-seed", args["calib-seed"] as string | undefined, 0, 0);
  const calib = calibrationWindows(tokenizeFile(file, await loadTokenizer(modelDir)), { samples, seq, seed, source: file });
  const settings = { blockSize: intArg("gptq-block", args["gptq-block"] as string | undefined, defaultGptqSettings.blockSize), dampPercent: floatArg("damp", args.damp as string | undefined, defaultGptqSettings.dampPercent), actOrder: false };
  const progress = createProgress("gptq layers", model.config.numLayers * 7);
  // Rows that are not whole super-blocks: what the file will hold for them (llama.cpp's fallback type).
  const fallback = (values: Float32Array, rowLength: number) => {
    const t = fallbackType(GGML_TYPES[name], rowLength);
    return t.blockSize === 1 ? values : decodeRows(t, encodeRows(t, values), values.length);
  };
  const { weights, blocks, report } = await gptqQuantizeModelOnBlocks(
    model,
    calib,
    { settings, trueSequential: args["true-sequential"] !== false, seq, batch: Math.max(1, Math.floor(2048 / seq)), onProgress: (done) => progress.update(done) },
    kQuantTarget(name),
    fallback,
  );
  progress.stop();
  const made = new Map([...blocks].map(([tensor, data]) => [tensor, { type: GGML_TYPES[name], data }]));
  const r = exportGguf({ kind: "float", model: new LlamaModel(model.config, weights, model.sourceDir) }, modelDir, outFile, { dtype: target, blocks: made });
  return {
    report: { target: name, calib: file, calibSamples: samples, calibSeq: seq, calibrated_layers: blocks.size, types: r.types, gptq: report },
    lines: [
      `GPTQ onto ${name}: ${blocks.size} layers calibrated on ${samples} windows of ${seq} tokens from ${file} in ${report.seconds.toFixed(1)} s; wrote ${outFile} (${Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(", ")})`,
    ],
  };
}
