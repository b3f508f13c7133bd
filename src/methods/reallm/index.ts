// ReALLM fine-tuning (Leconte et al. 2024): on a slimtune-reallm model (W ≈ L₁·L₂ + vector-quantized
// Q), only the low-rank factors L₁, L₂ train; codes, codebooks and scales stay frozen. With
// --block-steps and --reference (the float model), each block's factors are first fitted to the
// float block's output (blockwise.ts), then the usual loop trains them end to end on the task. The
// result is a complete slimtune-reallm folder with the tuned factors (evaluate it with --model).

import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import type { Graph } from "../../engine/index.js";
import { saveReallmFolder } from "../../formats/quantized/reallm-folder.js";
import { LlamaModel } from "../../models/llama/model.js";
import { QuantizedParams, lowRankNames } from "../../models/parts/quantized-params.js";
import type { QuantizedLinear, QuantizedModel, ReallmLinear } from "../../quant/types.js";
import { quantizedBase } from "../base.js";
import { floatFlag, intFlag } from "../flags.js";
import { type TuningMethod, defineMethod } from "../method.js";
import { type BlockwiseOptions, blockwiseFit } from "./blockwise.js";

export interface ReallmTuneOptions {
  /** Block-wise phase: steps per block (0: skip it). */
  blockSteps: number;
  /** The float model the ReALLM model came from (needed by the block-wise phase). */
  reference?: string;
  blockLr: number;
  blockBatch: number;
  blockSamples: number;
}

function reallmLayers(qm: QuantizedModel): Map<string, ReallmLinear> {
  const out = new Map<string, ReallmLinear>();
  for (const [p, q] of qm.linears) {
    if (q.kind !== "reallm") {
      throw new SlimtuneError("E_ARG", `--method reallm trains the low-rank factors of a ReALLM model; ${p} is a ${q.kind} layer — make the model with slimtune quantize --method reallm`);
    }
    out.set(p, q);
  }
  return out;
}

export function reallmMethod(qm: QuantizedModel, opts: ReallmTuneOptions): TuningMethod {
  const layers = reallmLayers(qm);
  const trainable = new Map<string, HostParam>();
  for (const [p, q] of layers) {
    const r = q.spec.rank;
    if (r === 0) continue;
    const names = lowRankNames(p);
    trainable.set(names.l1, { data: Float32Array.from(q.l1), shape: [q.outFeatures, r] });
    trainable.set(names.l2, { data: Float32Array.from(q.l2), shape: [r, q.inFeatures] });
  }
  if (trainable.size === 0) {
    throw new SlimtuneError("E_ARG", "every layer of this ReALLM model has rank 0, so nothing can train; re-quantize with a larger --bits-per-weight or a fixed --rank");
  }
  let total = 0;
  for (const q of layers.values()) total += q.outFeatures * q.inFeatures;
  for (const d of qm.dense.values()) total += d.data.length;
  // The model as it stands: the frozen parts of qm with the current factors.
  const current = (): QuantizedModel => {
    const linears = new Map<string, QuantizedLinear>(qm.linears);
    for (const [p, q] of layers) {
      if (q.spec.rank === 0) continue;
      const names = lowRankNames(p);
      linears.set(p, { ...q, l1: trainable.get(names.l1)!.data, l2: trainable.get(names.l2)!.data });
    }
    return { ...qm, linears };
  };
  return {
    name: "reallm",
    config: qm.config,
    trainable,
    params: (graph: Graph) => new QuantizedParams(graph, qm, { lowRankInputs: true }),
    decay: () => true,
    prepare: async (ctx) => {
      if (opts.blockSteps === 0) return null;
      if (!opts.reference) {
        throw new SlimtuneError("E_ARG", "--block-steps fits each block to the float model's: pass that model with --reference DIR (or --block-steps 0 to train end to end only)");
      }
      const block: BlockwiseOptions = { reference: LlamaModel.load(opts.reference), steps: opts.blockSteps, lr: opts.blockLr, batch: opts.blockBatch, samples: opts.blockSamples };
      const started = performance.now();
      const blocks = await blockwiseFit(current(), trainable, ctx, block);
      return { blockwise: { steps: opts.blockSteps, lr: opts.blockLr, samples: opts.blockSamples, seconds: (performance.now() - started) / 1000, blocks } };
    },
    save: (outDir: string) => saveReallmFolder(outDir, current(), { budgetBitsPerWeight: qm.method?.config?.budget_bits_per_weight as number | undefined }),
    totalParameters: total,
  };
}

export const reallmDefinition = defineMethod({
  name: "reallm",
  defaultLr: 1e-3,
  summary: "ReALLM model (quantize --method reallm): only the low-rank factors L1, L2 train, block-wise against --reference then end to end (writes a slimtune-reallm folder)",
  needs: "quantized",
  flags: {
    blockSteps: intFlag(0, "reallm: block-wise steps per block before end-to-end training (needs --reference)", { min: 0 }),
    reference: { type: "string", description: "reallm: the float model the ReALLM model was made from (block-wise targets)" },
    blockLr: floatFlag(1e-3, "reallm: block-wise learning rate", { min: 0 }),
    blockBatch: intFlag(4, "reallm: windows per block-wise step", { min: 1 }),
    blockSamples: intFlag(64, "reallm: windows of --seq tokens drawn from --data for the block-wise phase", { min: 1 }),
  },
  create: (base, o) => {
    const qm = quantizedBase(base, "reallm");
    return reallmMethod(qm, { blockSteps: o.blockSteps, reference: o.reference, blockLr: o.blockLr, blockBatch: o.blockBatch, blockSamples: o.blockSamples });
  },
});
