// QLoRA-style tuning: LoRA branches on a frozen quantized base (RTN codes or NF4), saved as a PEFT
// adapter whose base is the quantized folder.

import { SlimtuneError } from "../../core/errors.js";
import { isPeftAdapter } from "../../formats/peft.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import type { QuantizedModel } from "../../quant/types.js";
import { quantizedBase } from "../base.js";
import { defineMethod } from "../method.js";
import { type LoraBase, type LoraMethod, type LoraOptions, loraFlags, loraFromAdapter, loraMethod } from "../lora/index.js";

export function quantizedLoraBase(qm: QuantizedModel): LoraBase {
  let total = 0;
  for (const q of qm.linears.values()) total += q.outFeatures * q.inFeatures;
  for (const d of qm.dense.values()) total += d.data.length;
  const layer = (p: string) => {
    const q = qm.linears.get(p);
    if (!q) throw new SlimtuneError("E_ARG", `quantized model has no quantized linear layer "${p}"`);
    return q;
  };
  return {
    config: qm.config,
    // Not fused: gradients must flow through the frozen base to the layers below.
    params: (g) => new QuantizedParams(g, qm),
    totalParameters: total,
    baseName: qm.sourceDir,
    modulePaths: [...qm.linears.keys()],
    outFeatures: (p) => layer(p).outFeatures,
    inFeatures: (p) => layer(p).inFeatures,
  };
}

export function qloraMethod(qm: QuantizedModel, opts: LoraOptions): LoraMethod {
  return loraMethod(quantizedLoraBase(qm), opts, "qlora");
}

export function qloraFromAdapter(qm: QuantizedModel, adapterDir: string): LoraMethod {
  return loraFromAdapter(quantizedLoraBase(qm), adapterDir, { name: "qlora" });
}

export const qloraDefinition = defineMethod({
  name: "qlora",
  defaultLr: 1e-3,
  summary: "frozen quantized base (RTN or NF4) + trainable LoRA branches (PEFT adapter folder)",
  needs: "quantized",
  flags: loraFlags,
  create: (base, o, ctx) => {
    const qm = quantizedBase(base, "qlora");
    return ctx.adapter ? qloraFromAdapter(qm, ctx.adapter) : qloraMethod(qm, { rank: o.rank, alpha: o.alpha, targetModules: o.targets, seed: ctx.seed });
  },
  adapter: {
    detect: isPeftAdapter,
    load: (base, dir) => qloraFromAdapter(quantizedBase(base, "qlora"), dir),
  },
});
