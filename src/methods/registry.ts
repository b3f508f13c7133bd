// Every tuning method slimtune offers, in one list: adding a method is one folder plus one line here.

import { SlimtuneError } from "../errors.js";
import type { LlamaModel } from "../models/llama/model.js";
import type { QuantizedModel } from "../quant/types.js";
import { fullFineTuning } from "./full/index.js";
import type { TuningMethod } from "./method.js";
import { loadPeqaAdapter } from "./peqa/adapter.js";
import { peqaMethod } from "./peqa/index.js";
import { denseLoraBase, loraForDenseModel, loraFromAdapter } from "./lora/index.js";
import { qloraFromAdapter, qloraMethod } from "./qlora/index.js";
import { fineGatesMethod } from "./finegates/index.js";

/** What `finetune` loaded: a float model folder, or a quantized one. */
export type LoadedBase = { kind: "float"; model: LlamaModel } | { kind: "quantized"; model: QuantizedModel };

export interface MethodOptions {
  rank: number;
  alpha: number;
  targets: string[];
  seed: number;
  /** Start from this adapter folder instead of the method's initial values. */
  adapter?: string;
  /** FineGates: fraction of each gate vector to switch off, penalty weight, gate noise σ, LoRA rank inside the gates (0: none). */
  targetSparsity: number;
  lambda: number;
  gateSigma: number;
  gateLrScale: number;
  gateLoraRank: number;
  residualGates: boolean;
  hardenToTarget: boolean;
}

export interface MethodDefinition {
  name: string;
  summary: string;
  /** Which kind of model folder --model must be. */
  needs: "float" | "quantized";
  create(base: LoadedBase, opts: MethodOptions): TuningMethod;
}

export const methods: MethodDefinition[] = [
  {
    name: "full",
    summary: "every weight trains (float model)",
    needs: "float",
    create: (base) => fullFineTuning(asFloat(base)),
  },
  {
    name: "lora",
    summary: "frozen float base + trainable rank-r B·A on the --targets layers (PEFT adapter folder)",
    needs: "float",
    create: (base, o) =>
      o.adapter
        ? loraFromAdapter(denseLoraBase(asFloat(base)), o.adapter)
        : loraForDenseModel(asFloat(base), { rank: o.rank, alpha: o.alpha, targetModules: o.targets, seed: o.seed }),
  },
  {
    name: "qlora",
    summary: "frozen quantized base (RTN or NF4) + trainable LoRA branches (PEFT adapter folder)",
    needs: "quantized",
    create: (base, o) => {
      const qm = asQuantized(base, "qlora");
      return o.adapter ? qloraFromAdapter(qm, o.adapter) : qloraMethod(qm, { rank: o.rank, alpha: o.alpha, targetModules: o.targets, seed: o.seed });
    },
  },
  {
    name: "finegates",
    summary: "stochastic row/column gates (+ LoRA with --lora-rank) that adapt the model; the gated-off structure is removed at the end",
    needs: "float",
    create: (base, o) =>
      fineGatesMethod(asFloat(base), {
        targetSparsity: o.targetSparsity,
        lambda: o.lambda,
        sigma: o.gateSigma,
        gateLrScale: o.gateLrScale,
        loraRank: o.gateLoraRank,
        loraAlpha: o.alpha,
        targets: o.targets,
        residualGates: o.residualGates,
        hardenToTarget: o.hardenToTarget,
        seed: o.seed,
      }),
  },
  {
    name: "peqa",
    summary: "scales of a quantized model train; codes and zeros stay frozen (a task = scale vectors)",
    needs: "quantized",
    create: (base, opts) => {
      const qm = asQuantized(base, "peqa");
      return peqaMethod(qm, { from: opts.adapter ? loadPeqaAdapter(opts.adapter, qm) : undefined });
    },
  },
];

export function findMethod(name: string): MethodDefinition {
  const m = methods.find((d) => d.name === name);
  if (!m) throw new SlimtuneError("E_ARG", `unknown --method "${name}"; choose one of: ${methods.map((d) => d.name).join(", ")}`);
  return m;
}

function asFloat(base: LoadedBase): LlamaModel {
  if (base.kind !== "float") throw new SlimtuneError("E_ARG", "this method needs a float model folder; --model points at a quantized one");
  return base.model;
}

function asQuantized(base: LoadedBase, method: string): QuantizedModel {
  if (base.kind !== "quantized") {
    throw new SlimtuneError("E_ARG", `--method ${method} needs a quantized model folder; make one with: slimtune quantize --model DIR --bits 4 --out QDIR`);
  }
  return base.model;
}
