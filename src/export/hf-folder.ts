// `export --format hf`: a model with its adapter merged in, as a Hugging Face folder — what PEFT's
// merge_and_unload gives, written by slimtune's own codecs. The merge is deploy.ts's (the one GGUF
// and ONNX use): LoRA folded into float weights, PEQA's tuned scales put into the integer layers,
// a FineGates run's gated-off structure removed. What the folder holds, by what was merged:
//
//   float base + LoRA, FineGates    a float folder: model.safetensors F32 (--dtype f16: F16), config.json,
//                                   tokenizer files, generation_config.json
//   quantized base + PEQA           the quantized folder at the base's bits (GPTQ v1 for RTN/GPTQ
//                                   codes), codes and zero points kept, the tuned scales in place
//   quantized base + LoRA (QLoRA,   no default: the merged weights are off the base's grid. --dtype
//   LQ-LoRA)                        f32|f16 writes them as float (upcast), --dtype rtn re-quantizes each
//                                   layer round-to-nearest at its own bits, group size and symmetry
//
// Whatever the folder holds differently from the merged model is recorded per tensor
// (export/changes.ts) from the folder itself: it is read back before it is published, so a change
// the writer makes (float16 scales in a GPTQ folder, F16 weights) is seen, never assumed away.
// Without an adapter there is nothing to merge: --model is a Hugging Face folder already.

import fs from "node:fs";
import path from "node:path";
import { replaceDirAtomic, writeFileAtomic } from "../core/atomic.js";
import { SlimtuneError } from "../core/errors.js";
import { OUTPUT_MARKER } from "../core/output.js";
import { saveLlamaFolder } from "../formats/hf-folder.js";
import { loadQuantizedFolder, saveQuantizedFolder } from "../formats/quantized/index.js";
import { LlamaModel } from "../models/llama/model.js";
import type { LoadedBase } from "../models/load.js";
import { dequantize } from "../quant/kinds/index.js";
import { quantizeModel } from "../quant/quantize-model.js";
import type { QuantSpec, QuantizedModel } from "../quant/types.js";
import { type TensorChange, layerWords } from "./changes.js";
import { type Deployed, dequantizedModel, deployedModel } from "./deploy.js";

export const HF_DTYPES = ["f32", "f16", "rtn"] as const;
export type HfDtype = (typeof HF_DTYPES)[number];

export interface HfExportOptions {
  /** f32/f16: a float folder; rtn: LoRA merged into a quantized base, re-quantized at the base's bits. Absent: what the merge is. */
  dtype?: HfDtype;
  /** Keep what each changed tensor holds in the folder (TensorChange.decoded), to measure it. */
  keepDecoded?: boolean;
}

export interface HfExportReport {
  /** The merged model the folder is compared against, and its description. */
  deployed: Deployed;
  /** What the folder holds: "float32", "float16", "gptq" or "slimtune-nf4" (quantization_config.quant_method). */
  holds: string;
  /** Files written, relative to the folder, with their total size. */
  files: string[];
  bytes: number;
  /** What the folder holds differently from the merged model (empty when it is the merged model). */
  changes: TensorChange[];
}

type Plan = { write: "float"; model: LlamaModel; half: boolean } | { write: "quantized"; model: QuantizedModel; requantized: boolean };

/** float16's largest finite value: a float weight beyond it would be written as Inf. */
const F16_MAX = 65504;

export function exportHfFolder(base: LoadedBase, adapterDir: string | undefined, outDir: string, opts: HfExportOptions = {}): HfExportReport {
  if (!adapterDir) {
    throw new SlimtuneError(
      "E_ARG",
      "--format hf merges an adapter into its base, and no --adapter was given: --model is a Hugging Face folder already (copy it as it is); pass --adapter with a LoRA, QLoRA, PEQA adapter or a FineGates run folder",
    );
  }
  const deployed = deployedModel(base, adapterDir);
  const plan = planFor(base, deployed, opts.dtype);
  if (plan.write === "float" && plan.half) refuseF16Overflow(plan.model);
  let changes: TensorChange[] = [];
  let files: string[] = [];
  let bytes = 0;
  replaceDirAtomic(outDir, (tmp) => {
    if (plan.write === "float") saveLlamaFolder(tmp, plan.model.config, new Map([...plan.model.weights].map(([k, w]) => [k, w.data])), plan.model.sourceDir ?? undefined, { dtype: plan.half ? "F16" : "F32" });
    else saveQuantizedFolder(tmp, plan.model);
    writeGenerationConfig(tmp, plan.model.config);
    // Read back before publishing: a folder that does not load is never left in --out.
    changes = changesOf(tmp, base, deployed, plan, opts.keepDecoded === true);
    files = listFiles(tmp);
    bytes = files.reduce((a, f) => a + fs.statSync(path.join(tmp, f)).size, 0);
  });
  const holds = plan.write === "float" ? (plan.half ? "float16" : "float32") : plan.model.spec.scheme === "nf4" ? "slimtune-nf4" : "gptq";
  return { deployed, holds, files, bytes, changes };
}

/** What to write for this merge and --dtype; E_ARG for a combination that would change the model unasked or cannot be written. */
function planFor(base: LoadedBase, deployed: Deployed, dtype: HfDtype | undefined): Plan {
  const merged = deployed.base;
  if (merged.kind === "quantized") {
    if (dtype === "rtn") throw new SlimtuneError("E_ARG", "--dtype rtn re-quantizes a LoRA merged into a quantized base; a PEQA merge keeps the base's codes and bits as they are — leave --dtype out (or --dtype f32|f16 for a float folder)");
    if (dtype === undefined) return { write: "quantized", model: merged.model, requantized: false };
    return { write: "float", model: dequantizedModel(merged.model), half: dtype === "f16" };
  }
  if (base.kind === "quantized") {
    if (dtype === undefined) {
      throw new SlimtuneError(
        "E_ARG",
        `the ${deployed.merged ?? "LoRA"} adapter was merged into a quantized base (${[...new Set([...base.model.linears.values()].map((q) => layerWords(q, base.model.method?.name)))].join("; ")}), so the merged weights are off its grid and the folder cannot keep the base's bits unchanged. Choose: --dtype f32 or f16 (a float folder: the merge exactly, larger), or --dtype rtn (re-quantized round-to-nearest at each layer's own bits, group size and symmetry: re-rounded); either is printed as a change, with its KL given --data`,
      );
    }
    if (dtype === "rtn") return { write: "quantized", model: requantize(merged.model, base.model), requantized: true };
    return { write: "float", model: merged.model, half: dtype === "f16" };
  }
  if (dtype === "rtn") throw new SlimtuneError("E_ARG", "--dtype rtn re-quantizes a LoRA merged into a quantized base at the base's bits; this base is float — write the merge (no --dtype, or f16), then quantize that folder with slimtune quantize");
  return { write: "float", model: merged.model, half: dtype === "f16" };
}

/** The merged float weights rounded onto each quantized layer's own grid spec (act-order is not kept: RTN has no column order). */
function requantize(merged: LlamaModel, source: QuantizedModel): QuantizedModel {
  const specs = new Map<string, QuantSpec>();
  for (const [p, q] of source.linears) {
    if (q.kind === "reallm") {
      throw new SlimtuneError("E_ARG", `--dtype rtn rounds onto a grid of codes; layer ${p} of the base is ReALLM (low-rank + vector-quantized) — export the merge with --dtype f32 or f16`);
    }
    specs.set(p, q.spec);
  }
  // Layers the base kept in float stay float.
  return quantizeModel(merged, (p) => specs.get(p) ?? null);
}

function refuseF16Overflow(model: LlamaModel): void {
  for (const [name, w] of model.weights) {
    for (const v of w.data) {
      if (Math.abs(v) > F16_MAX) throw new SlimtuneError("E_ARG", `tensor "${name}" holds ${v}, beyond float16's range (±${F16_MAX}); export with --dtype f32`);
    }
  }
}

/** transformers' GenerationConfig comes from this file; the source's copy wins, else one from config.json's token ids. */
function writeGenerationConfig(dir: string, config: LlamaModel["config"]): void {
  const file = path.join(dir, "generation_config.json");
  if (fs.existsSync(file)) return;
  const gen: Record<string, unknown> = {};
  if (config.bosTokenId !== undefined) gen.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== undefined) gen.eos_token_id = config.eosTokenIds && config.eosTokenIds.length > 1 ? config.eosTokenIds : config.eosTokenId;
  writeFileAtomic(file, `${JSON.stringify(gen, null, 2)}\n`);
}

/**
 * Each tensor of the written folder `dir` that differs from the merged model or changed kind:
 * quantized layers written as float (upcast), float tensors rounded to F16 (re-rounded), layers
 * re-quantized (re-rounded), PEQA scales rounded to the folder's float16 (codes kept).
 */
function changesOf(dir: string, base: LoadedBase, deployed: Deployed, plan: Plan, keepDecoded: boolean): TensorChange[] {
  const source = deployed.base.kind === "float" ? deployed.base.model : dequantizedModel(deployed.base.model);
  const baseMethod = base.kind === "quantized" ? base.model.method?.name : undefined;
  const baseLayer = (tensor: string) => (base.kind === "quantized" && tensor.endsWith(".weight") ? base.model.linears.get(tensor.slice(0, -".weight".length)) : undefined);
  const changes: TensorChange[] = [];
  const add = (change: TensorChange, values: Float32Array) => changes.push(keepDecoded ? { ...change, decoded: values } : change);
  if (plan.write === "float") {
    const written = LlamaModel.load(dir);
    const to = plan.half ? "F16" : "F32";
    for (const [name, w] of written.weights) {
      const was = baseLayer(name);
      if (was) add({ tensor: name, from: layerWords(was, baseMethod), to, kind: "upcast" }, w.data);
      else if (!sameValues(w.data, source.weights.get(name)?.data)) add({ tensor: name, from: "float", to, kind: "re-rounded" }, w.data);
    }
    return changes;
  }
  const written = loadQuantizedFolder(dir);
  const merged = deployed.base.kind === "quantized" ? deployed.base.model : null;
  for (const [p, q] of written.linears) {
    const tensor = `${p}.weight`;
    if (plan.requantized) {
      add({ tensor, from: `float (${deployed.merged ?? "adapter"} merged)`, to: layerWords(q, "rtn"), kind: "re-rounded" }, dequantize(q));
      continue;
    }
    const own = merged?.linears.get(p);
    if (!own || !("scales" in own) || !("scales" in q)) continue;
    if (!sameValues(q.scales, own.scales)) add({ tensor, from: layerWords(own, merged?.method?.name), to: "GPTQ scales F16", kind: "codes kept, scales rounded to f16" }, dequantize(q));
  }
  for (const [name, w] of written.dense) {
    if (!sameValues(w.data, source.weights.get(name)?.data)) add({ tensor: name, from: "float", to: "float (as the folder stores it)", kind: "re-rounded" }, w.data);
  }
  return changes;
}

function sameValues(a: Float32Array, b: Float32Array | undefined): boolean {
  if (!b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function listFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f !== OUTPUT_MARKER && fs.statSync(path.join(dir, f)).isFile()).sort();
}
