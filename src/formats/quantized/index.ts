// Quantized model folders, whichever layout: load by quantization_config.quant_method, save in the
// layout of the model's kind (GPTQ for rtn, slimtune-nf4 for nf4, slimtune-reallm for reallm). A new quantized layout is a
// module in this folder plus one entry in each table here.

import { SlimtuneError } from "../../core/errors.js";
import { shownJson } from "../../core/json.js";
import { hasTableLayout } from "../../quant/tables.js";
import type { QuantScheme, QuantizedModel } from "../../quant/types.js";
import { FolderTensors } from "../folder-tensors.js";
import { type DenseLoadOptions, readQuantFolderConfig } from "./common.js";
import { gptqQuantMethod, loadGptqFolder, saveGptqFolder } from "./gptq-folder.js";
import { loadNf4Folder, nf4QuantMethod, saveNf4Folder } from "./nf4-folder.js";
import { loadReallmFolder, reallmQuantMethod, saveReallmFolder } from "./reallm-folder.js";
import { streamedTables, tableTensorNames } from "./streamed-tables.js";

export { isQuantizedFolder } from "./common.js";
export { loadGptqFolder, saveGptqFolder } from "./gptq-folder.js";
export { loadNf4Folder, saveNf4Folder } from "./nf4-folder.js";
export { loadReallmFolder, saveReallmFolder } from "./reallm-folder.js";

const loaders: Record<string, (dir: string, opts: DenseLoadOptions) => QuantizedModel> = {
  [gptqQuantMethod]: loadGptqFolder,
  [nf4QuantMethod]: loadNf4Folder,
  [reallmQuantMethod]: loadReallmFolder,
};

const savers: Record<QuantScheme, (dir: string, qm: QuantizedModel) => void> = {
  rtn: saveGptqFolder,
  nf4: saveNf4Folder,
  reallm: (dir, qm) => saveReallmFolder(dir, qm, { budgetBitsPerWeight: qm.method?.config?.budget_bits_per_weight as number | undefined }),
};

export interface QuantizedLoadOptions {
  /**
   * Build the embedding/LM head as RTN tables of these bits straight from the file
   * (streamed-tables.ts) instead of loading them as float32: the model comes back with `tables` and
   * without those dense tensors, as eval/head-tables.ts's withQuantizedHead would leave it, but the
   * float copy never exists. Ignored when the hidden size has no whole groups of 32.
   */
  headTables?: 4 | 8;
}

/** Loads a GPTQ, slimtune-nf4 or slimtune-reallm folder, chosen by quantization_config.quant_method (absent: GPTQ). */
export function loadQuantizedFolder(dir: string, opts: QuantizedLoadOptions = {}): QuantizedModel {
  const { config, quant, quantFile } = readQuantFolderConfig(dir);
  const method = quant.quant_method ?? gptqQuantMethod;
  const load = typeof method === "string" ? loaders[method] : undefined;
  if (!load) {
    throw new SlimtuneError(
      "E_CONFIG",
      `quantization_config: "quant_method" is ${shownJson(method)}; slimtune reads ${Object.keys(loaders).map((m) => `"${m}"`).join(" and ")} folders — dequantize it with its own tool, or quantize the float model with slimtune quantize`,
      quantFile,
    );
  }
  if (!opts.headTables || !hasTableLayout(config)) return load(dir, {});
  // The tables first: their codes and one block of floats are all this step holds.
  const tables = streamedTables(FolderTensors.open(dir), config, opts.headTables);
  return { ...load(dir, { skipDense: tableTensorNames(config) }), tables };
}

/** Saves in the layout of the model's kind: GPTQ for rtn, slimtune-nf4 for nf4, slimtune-reallm for reallm. */
export function saveQuantizedFolder(outDir: string, qm: QuantizedModel): void {
  savers[qm.spec.scheme](outDir, qm);
}
