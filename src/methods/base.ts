// Narrowing a loaded base to the kind a method needs, with the error a user can act on.

import { SlimtuneError } from "../core/errors.js";
import type { LlamaModel } from "../models/llama/model.js";
import type { LoadedBase } from "../models/load.js";
import type { QuantizedModel } from "../quant/types.js";

export function floatBase(base: LoadedBase, method: string): LlamaModel {
  if (base.kind !== "float") {
    throw new SlimtuneError("E_ARG", `--method ${method} needs a float model folder; --model points at a quantized one — pass the float model it came from`);
  }
  return base.model;
}

export function quantizedBase(base: LoadedBase, method: string): QuantizedModel {
  if (base.kind !== "quantized") {
    throw new SlimtuneError("E_ARG", `--method ${method} needs a quantized model folder; make one with: slimtune quantize --model DIR --bits 4 --out QDIR`);
  }
  return base.model;
}
