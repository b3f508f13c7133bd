// A GPTQ folder for GPTQModel. slimtune quantize writes GPTQ v1 ("gptq": zero points stored as
// z − 1), which transformers/optimum, AutoGPTQ and vLLM load. GPTQModel loads a v1 folder only when
// it is symmetric or made by GPTQModel ≥ 0.9.0 (its loader raises for sym=false otherwise); it loads
// "gptq_v2" folders, where z is stored as is, without that check. This writes the same codes,
// scales and zero points as v2, under slimtune's own name in meta.quantizer — no claim to be
// GPTQModel — so an asymmetric slimtune model reaches GPTQModel unchanged.

import { SlimtuneError } from "../core/errors.js";
import { saveGptqFolder } from "../formats/quantized/gptq-folder.js";
import type { LoadedBase } from "../models/load.js";

export interface GptqV2Report {
  layers: number;
  /** Every layer symmetric: the v1 folder would have loaded in GPTQModel too. */
  symmetric: boolean;
}

export function exportGptqV2(base: LoadedBase, outDir: string): GptqV2Report {
  if (base.kind !== "quantized") {
    throw new SlimtuneError("E_ARG", "--format gptq-v2 writes a quantized model's codes; this model is float — quantize it first (slimtune quantize --bits 4 …), then export the folder");
  }
  const other = [...base.model.linears].find(([, q]) => q.kind !== "rtn");
  if (other) {
    throw new SlimtuneError("E_ARG", `--format gptq-v2 holds integer (RTN/GPTQ) codes with zero points; layer ${other[0]} is ${other[1].kind} — export it with --format gguf or onnx`);
  }
  saveGptqFolder(outDir, base.model, { checkpointFormat: "gptq_v2" });
  const symmetric = [...base.model.linears.values()].every((q) => q.kind === "rtn" && q.spec.symmetric);
  return { layers: base.model.linears.size, symmetric };
}
