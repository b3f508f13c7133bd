// `slimtune quantize --method …`: the quantizers beyond round-to-nearest, each with its own flags.
// quantize.ts keeps RTN/NF4 and calls `quantizeByMethod` for the others:
//   gptq    calibrated error feedback onto the same integer grid (a GPTQ checkpoint; --act-order)
//   reallm  W ≈ L₁L₂ + vector-quantized residual within --bits-per-weight (a slimtune-reallm folder)
//   lqlora  W ≈ L₁L₂ + RTN/NF4 residual: the grid folder plus <out>/lqlora_adapter (PEFT LoRA = L₁L₂)
// Kept apart from quantize.ts so each method's flags and report live in one place.

import path from "node:path";
import type { ArgDef } from "citty";
import { linearModulesOf } from "../arch/llama/shapes.js";
import { isGpt2 } from "../arch/llama/config.js";
import { SlimtuneError } from "../core/errors.js";
import { calibrationWindows } from "../data/calibration.js";
import { tokenizeFile } from "../data/text-file.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import type { LlamaModel } from "../models/llama/model.js";
import { defaultGptqSettings } from "../quant/gptq.js";
import type { RtnStats } from "../quant/kinds/rtn.js";
import type { QuantSpec, QuantizedModel } from "../quant/types.js";
import { gptqQuantizeModel } from "../recipes/gptq.js";
import { HostGemm } from "../quant/linalg/host-gemm.js";
import { NearestCentroid } from "../quant/linalg/kmeans.js";
import { lqloraQuantizeModel } from "../quant/lqlora.js";
import { quantizeReallmModel } from "../quant/reallm.js";
import { type HostParam } from "../arch/params.js";
import { loraKeys, savePeftAdapter } from "../formats/peft.js";
import { lqloraAdapterDir } from "../methods/lqlora/index.js";
import { floatArg, intArg, requiredArg } from "./args.js";
import { createProgress } from "./progress.js";

export const quantizeMethods = ["rtn", "gptq", "reallm", "lqlora"] as const;

export type QuantizeMethod = (typeof quantizeMethods)[number];

export const quantizeMethodArgs = {
  method: {
    type: "string",
    description: "rtn (round to nearest), gptq (error feedback from calibration text, --calib), reallm (low-rank + vector-quantized residual) or lqlora (low-rank + RTN/NF4 residual, + PEFT adapter)",
    default: "rtn",
  },
  calib: { type: "string", description: "gptq: calibration text file (e.g. WikiText-2 valid.txt), tokenized with the model's tokenizer" },
  "calib-samples": { type: "string", description: "gptq: calibration windows", default: "128" },
  "calib-seq": { type: "string", description: "gptq: tokens per calibration window", default: "256" },
  "calib-seed": { type: "string", description: "gptq: seed of the windows' start positions", default: "0" },
  "act-order": { type: "boolean", description: "gptq: quantize columns by decreasing Hessian diagonal (desc_act, g_idx)" },
  damp: { type: "string", description: "gptq: dampening as a fraction of the mean Hessian diagonal", default: String(defaultGptqSettings.dampPercent) },
  "gptq-block": { type: "string", description: "gptq: columns per lazy batch update", default: String(defaultGptqSettings.blockSize) },
  "true-sequential": { type: "boolean", description: "gptq: quantize q/k/v, o, gate/up, down in turn inside each block (--no-true-sequential: one Hessian pass per block)", default: true },
  "bits-per-weight": { type: "string", description: "reallm: budget per matrix, everything stored counted (codes, codebook, scales, L1, L2)", default: "3" },
  rank: { type: "string", description: "reallm: fixed rank of L1·L2 (default: the largest the budget leaves); lqlora: rank of the LoRA part", default: "" },
  "vq-dim": { type: "string", description: "reallm: values per codebook entry, or a comma list to choose from per matrix", default: "2,4" },
  "code-bits": { type: "string", description: "reallm: log2 of the codebook size (default: chosen per matrix)" },
  "vq-block": { type: "string", description: "reallm: columns per absmax block", default: "64" },
  permute: { type: "string", description: "reallm: column permutation within blocks: on, off or auto (try both)", default: "off" },
  "lowrank-dtype": { type: "string", description: "reallm: storage of L1, L2: float16 or float32", default: "float16" },
  seed: { type: "string", description: "reallm/lqlora: seed of k-means and randomized SVD", default: "0" },
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
  /** Writes what the method adds beside the quantized folder (LQ-LoRA's adapter), after it is saved. */
  afterSave?: (outDir: string) => void;
  /** Method-specific numbers for --json. */
  report: Record<string, unknown>;
  /** Lines for the human-readable summary. */
  lines: string[];
}

/** Quantizes `model` with a method other than rtn; `spec` carries --bits, --group-size and --sym. */
export async function quantizeByMethod(method: Exclude<QuantizeMethod, "rtn">, modelDir: string, model: LlamaModel, spec: QuantSpec, args: Record<string, unknown>, stats: RtnStats): Promise<MethodResult> {
  switch (method) {
    case "reallm":
      return reallm(model, args);
    case "lqlora":
      return lqlora(model, spec, args);
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

function parseList(flag: string, value: unknown): number[] {
  const items = String(value).split(",").map((t) => Number(t.trim()));
  if (items.length === 0 || items.some((v) => !Number.isInteger(v) || v < 1)) throw new SlimtuneError("E_ARG", `--${flag} "${String(value)}" must be a positive integer or a comma list of them, e.g. 2,4`);
  return items;
}

function optionalInt(flag: string, value: unknown): number | undefined {
  return value === undefined || value === "" ? undefined : intArg(flag, String(value), 0, 0);
}

async function reallm(model: LlamaModel, args: Record<string, unknown>): Promise<MethodResult> {
  const budget = floatArg("bits-per-weight", args["bits-per-weight"] as string | undefined, 3);
  if (!(budget > 0)) throw new SlimtuneError("E_ARG", `--bits-per-weight ${budget} must be a positive number, e.g. 3`);
  const permute = String(args.permute ?? "off");
  if (!["on", "off", "auto"].includes(permute)) throw new SlimtuneError("E_ARG", `--permute "${permute}" must be on, off or auto`);
  const lowRankDtype = String(args["lowrank-dtype"] ?? "float16");
  if (lowRankDtype !== "float16" && lowRankDtype !== "float32") throw new SlimtuneError("E_ARG", `--lowrank-dtype "${lowRankDtype}" must be float16 or float32`);
  const gemm = new HostGemm();
  const nearest = new NearestCentroid();
  const progress = createProgress("reallm layers", model.config.numLayers * 7);
  try {
    const { qm, report } = await quantizeReallmModel(
      model,
      {
        budget,
        rank: optionalInt("rank", args.rank),
        vqDims: parseList("vq-dim", args["vq-dim"] ?? "2,4"),
        codeBits: optionalInt("code-bits", args["code-bits"]),
        blockSize: intArg("vq-block", args["vq-block"] as string | undefined, 64),
        permute: permute === "auto" ? "auto" : permute === "on",
        lowRankDtype,
        seed: intArg("seed", args.seed as string | undefined, 0, 0),
        gemm,
        nearest,
      },
      (done) => progress.update(done),
    );
    progress.stop();
    const ranks = report.layers.map((l) => l.spec.rank);
    const shapes = new Map<string, number>();
    for (const l of report.layers) shapes.set(`d ${l.spec.vqDim} × ${1 << l.spec.codeBits} centroids`, (shapes.get(`d ${l.spec.vqDim} × ${1 << l.spec.codeBits} centroids`) ?? 0) + 1);
    const mean = (xs: number[]) => sum(xs) / Math.max(1, xs.length);
    return {
      qm,
      report: { budget, reallm: report },
      lines: [
        `ReALLM within ${budget} bits/weight: ranks ${Math.min(...ranks)}–${Math.max(...ranks)} (mean ${mean(ranks).toFixed(1)}), VQ ${[...shapes].map(([k, v]) => `${k} (${v})`).join(", ")}; ` +
          `mean relative error ‖W − Ŵ‖/‖W‖ ${mean(report.layers.map((l) => l.relativeError)).toFixed(4)}; ${report.seconds.toFixed(1)} s (SVD ${sum(report.layers.map((l) => l.svdSeconds)).toFixed(1)} s, k-means ${sum(report.layers.map((l) => l.kmeansSeconds)).toFixed(1)} s)`,
      ],
    };
  } finally {
    progress.stop();
    await gemm.release();
    await nearest.release();
  }
}

async function lqlora(model: LlamaModel, spec: QuantSpec, args: Record<string, unknown>): Promise<MethodResult> {
  const rank = optionalInt("rank", args.rank) ?? 16;
  const gemm = new HostGemm();
  const progress = createProgress("lqlora layers", model.config.numLayers * 7);
  try {
    const { qm, factors, report } = await lqloraQuantizeModel(model, spec, { rank, gemm, seed: intArg("seed", args.seed as string | undefined, 0, 0) }, (done) => progress.update(done));
    progress.stop();
    const tensors = new Map<string, HostParam>();
    for (const [p, f] of factors) {
      const { a, b } = loraKeys(p);
      tensors.set(a, { data: f.l2, shape: [f.rank, f.l2.length / f.rank] });
      tensors.set(b, { data: f.l1, shape: [f.l1.length / f.rank, f.rank] });
    }
    const mean = (xs: number[]) => sum(xs) / Math.max(1, xs.length);
    const after = mean(report.layers.map((l) => Math.min(...l.errors)));
    const before = mean(report.layers.map((l) => l.quantOnlyError));
    return {
      qm,
      afterSave: (outDir) =>
        savePeftAdapter(path.join(outDir, lqloraAdapterDir), { r: rank, loraAlpha: rank, targetModules: [...linearModulesOf(qm.config)], baseModelNameOrPath: path.resolve(outDir), ...(isGpt2(qm.config) ? { fanInFanOut: true } : {}) }, tensors),
      report: { rank, adapter: lqloraAdapterDir, lqlora: report },
      lines: [
        `LQ-LoRA rank ${rank}: mean relative error ‖W − L1L2 − Q‖/‖W‖ ${after.toFixed(4)} (the grid alone: ${before.toFixed(4)}); ${report.seconds.toFixed(1)} s; LoRA part in ${path.join(String(args.out), lqloraAdapterDir)} (α = r, so it adds exactly L1·L2; eval --adapter it, or finetune --method lqlora continues it)`,
      ],
    };
  } finally {
    progress.stop();
    await gemm.release();
  }
}
