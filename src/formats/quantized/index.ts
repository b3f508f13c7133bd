// Quantized model folders, whichever layout: load by quantization_config.quant_method, save in the
// layout of the model's kind (GPTQ for rtn, slimtune-nf4 for nf4, slimtune-reallm for reallm). A new quantized layout is a
// module in this folder plus one entry in each table here.

import { SlimtuneError } from "../../core/errors.js";
import { shownJson } from "../../core/json.js";
import type { QuantScheme, QuantizedModel } from "../../quant/types.js";
import { readQuantFolderConfig } from "./common.js";
import { gptqQuantMethod, loadGptqFolder, saveGptqFolder } from "./gptq-folder.js";
import { loadNf4Folder, nf4QuantMethod, saveNf4Folder } from "./nf4-folder.js";
import { loadReallmFolder, reallmQuantMethod, saveReallmFolder } from "./reallm-folder.js";

export { isQuantizedFolder } from "./common.js";
export { loadGptqFolder, saveGptqFolder } from "./gptq-folder.js";
export { loadNf4Folder, saveNf4Folder } from "./nf4-folder.js";
export { loadReallmFolder, saveReallmFolder } from "./reallm-folder.js";

const loaders: Record<string, (dir: string) => QuantizedModel> = {
  [gptqQuantMethod]: loadGptqFolder,
  [nf4QuantMethod]: loadNf4Folder,
  [reallmQuantMethod]: loadReallmFolder,
};

const savers: Record<QuantScheme, (dir: string, qm: QuantizedModel) => void> = {
  rtn: saveGptqFolder,
  nf4: saveNf4Folder,
  reallm: (dir, qm) => saveReallmFolder(dir, qm, { budgetBitsPerWeight: qm.method?.config?.budget_bits_per_weight as number | undefined }),
};

/** Loads a GPTQ, slimtune-nf4 or slimtune-reallm folder, chosen by quantization_config.quant_method (absent: GPTQ). */
export function loadQuantizedFolder(dir: string): QuantizedModel {
  const { quant, quantFile } = readQuantFolderConfig(dir);
  const method = quant.quant_method ?? gptqQuantMethod;
  const load = typeof method === "string" ? loaders[method] : undefined;
  if (!load) {
    throw new SlimtuneError(
      "E_CONFIG",
      `quantization_config: "quant_method" is ${shownJson(method)}; slimtune reads ${Object.keys(loaders).map((m) => `"${m}"`).join(" and ")} folders — dequantize it with its own tool, or quantize the float model with slimtune quantize`,
      quantFile,
    );
  }
  return load(dir);
}

/** Saves in the layout of the model's kind: GPTQ for rtn, slimtune-nf4 for nf4, slimtune-reallm for reallm. */
export function saveQuantizedFolder(outDir: string, qm: QuantizedModel): void {
  savers[qm.spec.scheme](outDir, qm);
}
