// `slimtune quantize --method …`: the quantizers beyond round-to-nearest, each with its own flags.
// quantize.ts keeps RTN/NF4 and calls `quantizeByMethod` for the others:
//   gptq    calibrated error feedback onto the same integer grid (a GPTQ checkpoint; --act-order)
// Kept apart from quantize.ts so each method's flags and report live in one place.

import type { ArgDef } from "citty";
import { SlimtuneError } from "../core/errors.js";
import { calibrationWindows } from "../data/calibration.js";
import { tokenizeFile } from "../data/text-file.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import type { LlamaModel } from "../models/llama/model.js";
import { defaultGptqSettings } from "../quant/gptq.js";
import type { RtnStats } from "../quant/kinds/rtn.js";
import type { QuantSpec, QuantizedModel } from "../quant/types.js";
import { gptqQuantizeModel } from "../recipes/gptq.js";
import { floatArg, intArg, requiredArg } from "./args.js";
import { createProgress } from "./progress.js";

export const quantizeMethods = ["rtn", "gptq"] as const;
export type QuantizeMethod = (typeof quantizeMethods)[number];

export const quantizeMethodArgs = {
  method: { type: "string", description: "rtn (round to nearest) or gptq (error feedback from calibration text, --calib)", default: "rtn" },
  calib: { type: "string", description: "gptq: calibration text file (e.g. WikiText-2 valid.txt), tokenized with the model's tokenizer" },
  "calib-samples": { type: "string", description: "gptq: calibration windows", default: "128" },
  "calib-seq": { type: "string", description: "gptq: tokens per calibration window", default: "256" },
  "calib-seed": { type: "string", description: "gptq: seed of the windows' start positions", default: "0" },
  "act-order": { type: "boolean", description: "gptq: quantize columns by decreasing Hessian diagonal (desc_act, g_idx)" },
  damp: { type: "string", description: "gptq: dampening as a fraction of the mean Hessian diagonal", default: String(defaultGptqSettings.dampPercent) },
  "gptq-block": { type: "string", description: "gptq: columns per lazy batch update", default: String(defaultGptqSettings.blockSize) },
  "true-sequential": { type: "boolean", description: "gptq: quantize q/k/v, o, gate/up, down in turn inside each block (--no-true-sequential: one Hessian pass per block)", default: true },
} satisfies Record<string, ArgDef>;

export function parseQuantizeMethod(value: string | undefined): QuantizeMethod {
  const m = value ?? "rtn";
  if (!(quantizeMethods as readonly string[]).includes(m)) {
    throw new SlimtuneError("E_ARG", `--method "${m}" is unknown; choose ${quantizeMethods.join(", ")}`);
  }
  return m as QuantizeMethod;
}

/** Calibration token windows from --calib, --calib-samples, --calib-seq, --calib-seed. */
async function calibration(modelDir: string, args: Record<string, unknown>): Promise<{ ids: Int32Array; seq: number; samples: number; file: string }> {
  const file = requiredArg("calib", args.calib as string | undefined);
  const samples = intArg("calib-samples", args["calib-samples"] as string | undefined, 128);
  const seq = intArg("calib-seq", args["calib-seq"] as string | undefined, 256, 2);
  const seed = intArg("calib-seed", args["calib-seed"] as string | undefined, 0, 0);
  const tokens = tokenizeFile(file, await loadTokenizer(modelDir));
  return { ids: calibrationWindows(tokens, { samples, seq, seed, source: file }), seq, samples, file };
}

export interface MethodResult {
  qm: QuantizedModel;
  /** Method-specific numbers for --json. */
  report: Record<string, unknown>;
  /** Lines for the human-readable summary. */
  lines: string[];
}

/** Quantizes `model` with a method other than rtn; `spec` carries --bits, --group-size and --sym. */
export async function quantizeByMethod(method: Exclude<QuantizeMethod, "rtn">, modelDir: string, model: LlamaModel, spec: QuantSpec, args: Record<string, unknown>, stats: RtnStats): Promise<MethodResult> {
  switch (method) {
    case "gptq": {
      if (spec.scheme !== "rtn") throw new SlimtuneError("E_ARG", "--method gptq writes integer codes; drop --scheme nf4 (GPTQ uses the rtn grid)");
      const calib = await calibration(modelDir, args);
      const settings = {
        blockSize: intArg("gptq-block", args["gptq-block"] as string | undefined, defaultGptqSettings.blockSize),
        dampPercent: floatArg("damp", args.damp as string | undefined, defaultGptqSettings.dampPercent),
        actOrder: Boolean(args["act-order"]),
      };
      const total = model.config.numLayers * 7;
      const progress = createProgress("gptq layers", total);
      const { qm, report } = await gptqQuantizeModel(model, spec, calib.ids, {
        settings,
        trueSequential: args["true-sequential"] !== false,
        seq: calib.seq,
        batch: Math.max(1, Math.floor(2048 / calib.seq)),
        stats,
        onProgress: (done) => progress.update(done),
      });
      progress.stop();
      const slowest = [...report.layers].sort((a, b) => b.gptqSeconds + b.hessianSeconds - (a.gptqSeconds + a.hessianSeconds))[0];
      return {
        qm,
        report: { calib: calib.file, calibSamples: calib.samples, calibSeq: calib.seq, ...settings, trueSequential: args["true-sequential"] !== false, gptq: report },
        lines: [
          `GPTQ${settings.actOrder ? " with act-order" : ""}: ${calib.samples} calibration windows of ${calib.seq} tokens from ${calib.file}; ${report.seconds.toFixed(1)} s ` +
            `(block forwards ${sum(report.blocks.map((b) => b.forwardSeconds)).toFixed(1)} s, Hessians ${sum(report.blocks.map((b) => b.hessianSeconds)).toFixed(1)} s, column updates ${sum(report.blocks.map((b) => b.gptqSeconds)).toFixed(1)} s)` +
            (slowest ? `; slowest layer ${slowest.path} ${(slowest.gptqSeconds + slowest.hessianSeconds).toFixed(2)} s` : ""),
        ],
      };
    }
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
