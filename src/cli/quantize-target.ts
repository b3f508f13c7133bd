// `slimtune quantize --method gptq --target q4_k --out model.gguf`: GPTQ with its codes on the grid
// llama.cpp runs. Each linear layer whose rows are whole 256-value super-blocks is calibrated onto
// ggml's k-quant blocks (super-block scales and mins chosen as ggml's reference quantizer chooses
// them, then GPTQ's column-by-column rounding with error feedback onto that fixed grid); the result
// is written straight to a GGUF file — the k-quant blocks are the stored form (a GPTQ folder cannot
// hold k-quant mins), read by llama.cpp and by slimtune (`--model model.gguf`). The tensor types are
// those of `export --format gguf --dtype <target>`: one k-quant for every matrix (q4_k), or
// llama.cpp's per-tensor mix (q4_k_m: each k-quant layer calibrated onto its own type, Q4_K or the
// bumped Q6_K). Whatever is not a k-quant with whole super-blocks — rows of another length (llama.cpp's
// fallback, Q4_K → Q5_0), the embeddings — is rounded by ggml's reference quantizer, as the export does.

import type { ArgDef } from "citty";
import { SlimtuneError } from "../core/errors.js";
import { calibrationWindows } from "../data/calibration.js";
import { tokenizeFile } from "../data/text-file.js";
import { exportGguf } from "../export/gguf/model.js";
import { GGUF_PRESETS, type GgufPreset, type MixTensor, fallbackType, llamaOrder, presetTypes } from "../export/gguf/llama-mix.js";
import { GGML_TYPES, type GgmlType, decodeRows, encodeRows } from "../formats/gguf/ggml-types.js";
import { type KQuantName, isKQuant, kQuantTarget } from "../formats/gguf/k-quants.js";
import { ggufTensorName } from "../formats/gguf/llama.js";
import { layerShape } from "../arch/llama/config.js";
import { linearLayers } from "../arch/llama/shapes.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import { LlamaModel } from "../models/llama/model.js";
import { defaultGptqSettings } from "../quant/gptq.js";
import { gptqQuantizeModelOnBlocks } from "../recipes/gptq.js";
import { floatArg, intArg, requiredArg } from "./args.js";
import { createProgress } from "./progress.js";

/** One k-quant for every matrix (as `export --dtype q4_k`), or llama.cpp's per-tensor mix (as `--dtype q4_k_m`). */
export const GPTQ_TARGETS = ["q3_k", "q4_k", "q5_k", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"] as const;
type GptqTarget = (typeof GPTQ_TARGETS)[number];

/** Each matrix's ggml type under `target`, by GGUF tensor name. */
function targetTypes(target: GptqTarget, model: LlamaModel): (ggufName: string) => GgmlType {
  const { config } = model;
  const matrices: MixTensor[] = [{ name: "token_embd.weight", rowLength: config.hiddenSize }];
  if (!config.tieWordEmbeddings) matrices.push({ name: "output.weight", rowLength: config.hiddenSize });
  for (const l of linearLayers(config)) matrices.push({ name: ggufTensorName(`${l.path}.weight`), rowLength: l.inFeatures });
  if ((GGUF_PRESETS as readonly string[]).includes(target)) {
    const first = layerShape(config, 0);
    const mix = presetTypes(target as GgufPreset, llamaOrder(matrices), config.numLayers, first.numKvHeads > 0 ? first.numHeads / first.numKvHeads : 1);
    return (name) => mix.get(name)!;
  }
  const type = GGML_TYPES[target.toUpperCase() as KQuantName];
  const rowOf = new Map(matrices.map((m) => [m.name, m.rowLength]));
  return (name) => fallbackType(type, rowOf.get(name)!);
}

export const quantizeTargetArgs = {
  target: { type: "string", description: `gptq: calibrate onto ggml's k-quant grids and write a GGUF file to --out: one type (q3_k, q4_k, q5_k) or llama.cpp's mix (q2_k, q3_k_m, q4_k_m, q5_k_m, q6_k)` },
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
  const typeOf = targetTypes(target, model);
  const file = requiredArg("calib", args.calib as string | undefined);
  const samples = intArg("calib-samples", args["calib-samples"] as string | undefined, 128);
  const seq = intArg("calib-seq", args["calib-seq"] as string | undefined, 256, 2);
  const seed = intArg("calib-seed", args["calib-seed"] as string | undefined, 0, 0);
  const calib = calibrationWindows(tokenizeFile(file, await loadTokenizer(modelDir)), { samples, seq, seed, source: file });
  const settings = { blockSize: intArg("gptq-block", args["gptq-block"] as string | undefined, defaultGptqSettings.blockSize), dampPercent: floatArg("damp", args.damp as string | undefined, defaultGptqSettings.dampPercent), actOrder: false };
  const progress = createProgress("gptq layers", model.config.numLayers * 7);
  // Layers the target does not calibrate (rows that are not whole super-blocks, non-k types of a
  // mix): what the file will hold for them, by ggml's reference quantizer.
  const fallback = (path: string, values: Float32Array) => {
    const t = typeOf(ggufTensorName(`${path}.weight`));
    return t.blockSize === 1 ? values : decodeRows(t, encodeRows(t, values), values.length);
  };
  const targetFor = (path: string) => {
    const t = typeOf(ggufTensorName(`${path}.weight`));
    return isKQuant(t.name) ? kQuantTarget(t.name) : null;
  };
  const { weights, blocks, report } = await gptqQuantizeModelOnBlocks(
    model,
    calib,
    { settings, trueSequential: args["true-sequential"] !== false, seq, batch: Math.max(1, Math.floor(2048 / seq)), onProgress: (done) => progress.update(done) },
    targetFor,
    fallback,
  );
  progress.stop();
  const made = new Map([...blocks].map(([tensor, b]) => [tensor, { type: GGML_TYPES[b.target.name as KQuantName], data: b.data }]));
  const r = exportGguf({ kind: "float", model: new LlamaModel(model.config, weights, model.sourceDir) }, modelDir, outFile, { dtype: target, blocks: made });
  return {
    report: { target, calib: file, calibSamples: samples, calibSeq: seq, calibrated_layers: blocks.size, types: r.types, gptq: report },
    lines: [
      `GPTQ onto ${target}: ${blocks.size} layers calibrated on ${samples} windows of ${seq} tokens from ${file} in ${report.seconds.toFixed(1)} s; wrote ${outFile} (${Object.entries(r.types).map(([t, n]) => `${n} ${t}`).join(", ")})`,
    ],
  };
}
