// LQ-LoRA tuning: the model `quantize --method lqlora` wrote is a grid-quantized residual Q plus a
// PEFT LoRA adapter holding L₁·L₂ (<model>/lqlora_adapter); training continues that adapter as
// QLoRA does (frozen Q, trainable A and B), and saves a PEFT adapter for the same quantized folder.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../../core/errors.js";
import { isPeftAdapter } from "../../formats/peft.js";
import { quantizedBase } from "../base.js";
import { defineMethod } from "../method.js";
import { qloraFromAdapter } from "../qlora/index.js";

/** The adapter `quantize --method lqlora` writes inside its output folder. */
export const lqloraAdapterDir = "lqlora_adapter";

export const lqloraDefinition = defineMethod({
  name: "lqlora",
  defaultLr: 1e-3,
  summary: "LQ-LoRA model (quantize --method lqlora): frozen RTN/NF4 residual + the LoRA adapter L1·L2 it came with, trained as QLoRA (PEFT adapter folder)",
  needs: "quantized",
  flags: {},
  create: (base, _o, ctx) => {
    const qm = quantizedBase(base, "lqlora");
    const dir = ctx.adapter ?? (qm.sourceDir ? path.join(qm.sourceDir, lqloraAdapterDir) : null);
    if (!dir || !fs.existsSync(dir) || !isPeftAdapter(dir)) {
      throw new SlimtuneError("E_ARG", `--method lqlora starts from the LoRA part written by quantize --method lqlora (${lqloraAdapterDir}/ inside the model folder), and there is none${dir ? ` at ${dir}` : ""}; quantize with --method lqlora, or pass --adapter DIR`);
    }
    const method = qloraFromAdapter(qm, dir);
    return { ...method, name: "lqlora" };
  },
});
