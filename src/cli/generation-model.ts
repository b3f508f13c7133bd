// The model `generate`, `chat` and `eval --task generate` decode with, and their one --head-bits
// flag. Without an adapter, a quantized folder's 4/8-bit embedding and LM-head tables are built
// straight from its file (eval/head-tables.ts loadWithQuantizedHead), so the float embedding
// (113 MB at the SmolLM2-135M shape, 1 GiB at Llama-3.2-1B) never exists; the three commands share
// this so a model answers the same in each.

import { SlimtuneError, quote } from "../core/errors.js";
import { type HeadBits, loadWithQuantizedHead } from "../eval/head-tables.js";
import { generationScoring } from "../export/deploy.js";
import { loadBase } from "../models/load.js";
import type { ScoringModel } from "../models/scoring.js";

/** The --head-bits flag as each generating command declares it. */
export const headBitsFlag = {
  type: "string",
  description: "A quantized model's embedding and LM head: 4, 8 or float (default 8; quantized at load, RTN in groups of 32; not with --adapter)",
} as const;

/**
 * The --head-bits value. With --adapter it is refused rather than ignored: the adapter's model keeps
 * the float embedding and LM head it was trained against, so a width asked for would not be used.
 */
export function headBitsArg(value: string | undefined, adapter?: string): HeadBits {
  if (value === undefined) return 8;
  if (adapter !== undefined) {
    throw new SlimtuneError("E_ARG", `--head-bits applies only without --adapter: with an adapter the model keeps the float embedding and LM head the adapter was trained against; drop --head-bits ${quote(value)}`);
  }
  if (value === "4" || value === "8") return Number(value) as 4 | 8;
  if (value === "float") return "float";
  throw new SlimtuneError("E_ARG", `--head-bits ${quote(value)} must be 4, 8 or float`);
}

export interface GenerationModel {
  model: ScoringModel & { description: string };
  /** What the embedding/LM head is, for the command's report. */
  head: string;
}

/**
 * The model to generate with. With an adapter the head stays as the adapter's scoring expects it
 * (LoRA reads the float tensors), and --head-bits does not apply.
 */
export function loadGenerationModel(dir: string, adapter: string | undefined, bits: HeadBits): GenerationModel {
  if (adapter) return { model: generationScoring(loadBase(dir), adapter), head: "as the adapter's model has it" };
  const { base, head } = loadWithQuantizedHead(dir, bits);
  return { model: generationScoring(base), head };
}
