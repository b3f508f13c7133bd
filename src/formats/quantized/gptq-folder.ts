// GPTQ checkpoints (formats.md §1): write a QuantizedModel as a Hugging Face GPTQ folder that
// transformers/optimum, GPTQModel, AutoGPTQ and vLLM load as is, and read such folders back.
//
// Written: config.json with `quantization_config`, the same dictionary in quantize_config.json,
// model.safetensors, and the source's tokenizer files, swapped in atomically (replaceDirAtomic).
// Per quantized linear <mod> (N = out, K = in, G = K / group_size):
//   <mod>.qweight I32 [K·b/32, N]  codes packed along K (pack.ts; 3-bit codes straddle words)
//   <mod>.qzeros  I32 [G, N·b/32]  v1 ("gptq"): z − 1 packed along N
//   <mod>.scales  F16 [G, N]
//   <mod>.g_idx   I32 [K]          k / group_size (desc_act false); GPTQ act-order's group of each
//                                  input row (desc_act true: each group holds group_size rows)
//   <mod>.bias    F16 [N]          only for layers with a bias
// Dense tensors (embeddings, norms, lm_head) stay F32: slimtune evaluates and trains in float32, and
// F32 keeps them bit-exact through a save → load. transformers and vLLM cast them to float16 at load
// anyway (GPTQ kernels take fp16 activations), so config.json says torch_dtype "float16".
//
// Scales are F16 on disk, so a save → load round trip rounds every scale to the nearest float16
// (relative error ≤ 2^-11); codes and zero points are exact. Zero points must lie in [1, 2^b − 1]
// (v1 cannot store 0 safely, §1.5); quantizeRtn guarantees this, and saving refuses a zero of 0.
// The loader also reads "gptq_v2" zero points and sharded folders.
//
// Mixed precision: every layer carries its own spec. The model's default spec is written at top
// level; layers that differ get GPTQModel's `dynamic` overrides (gptq-dynamic.ts), and layers kept in
// float are written as plain `.weight` under a "-:" pattern. transformers/optimum ignore `dynamic`,
// so only GPTQModel and vLLM load mixed checkpoints correctly. desc_act is true at top level when
// most layers carry an act-order g_idx, with per-module overrides for the others.

import path from "node:path";
import { z } from "zod";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import { replaceDirAtomic, writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { float32ToFloat16 } from "../../core/f16.js";
import { isJsonObject, parseFields } from "../../core/json.js";
import { packAlongAxis, transpose, unpackAlongAxis } from "../../quant/pack.js";
import { checkQuantSpec, isQuantBits, quantGroupSizes } from "../../quant/spec.js";
import { type QuantBits, type QuantSpec, type QuantizedLinear, type QuantizedModel, type RtnLinear, gridLayer, gridSpecOf, sameSpec } from "../../quant/types.js";
import { FolderTensors, weightsFile } from "../folder-tensors.js";
import { type SafetensorsTensor, writeSafetensors } from "../safetensors.js";
import { copyTokenizerFiles } from "../tokenizer.js";
import { type DenseLoadOptions, checkQuantizedLinears, denseTensors, linearShape, loadDense, quantizeConfigFile, quantizedConfigJson, readQuantFolderConfig, sortForWriting } from "./common.js";
import { type DynamicEntry, type DynamicRule, buildDynamic, matchDynamic, parseDynamic } from "./gptq-dynamic.js";

export const gptqQuantMethod = "gptq";

/**
 * "gptq" (v1, the default): zero points stored as z − 1; transformers/optimum, AutoGPTQ and vLLM
 * read it, and GPTQModel reads it when sym is true. GPTQModel refuses a sym=false v1 folder it did
 * not make itself; "gptq_v2" (z stored as is) is what it loads for asymmetric models, and what
 * vLLM does not read (it decodes every GPTQ folder as v1).
 */
export type GptqCheckpointFormat = "gptq" | "gptq_v2";

/** The quantization_config dictionary written to config.json and quantize_config.json (formats.md §1.1). */
export function gptqQuantizationConfig(
  spec: QuantSpec,
  dynamic: Record<string, Record<string, unknown>> | null = null,
  opts: { descAct?: boolean; method?: QuantizedModel["method"]; checkpointFormat?: GptqCheckpointFormat } = {},
): Record<string, unknown> {
  const format = opts.checkpointFormat ?? "gptq";
  return {
    quant_method: gptqQuantMethod,
    bits: spec.bits,
    group_size: spec.groupSize === "channel" ? -1 : spec.groupSize,
    desc_act: opts.descAct ?? false,
    sym: spec.symmetric,
    // GPTQModel takes its format from "format" (QuantizeConfig.from_quant_config), transformers and
    // AutoGPTQ from "checkpoint_format": both say the same.
    checkpoint_format: format,
    format,
    pack_dtype: "int32",
    lm_head: false,
    ...(dynamic ? { dynamic } : {}),
    ...(opts.method?.config ?? {}),
    meta: { quantizer: ["slimtune:0.1.0"], method: opts.method?.name ?? "rtn" },
  };
}

function gptqTensors(module: string, q: RtnLinear, format: GptqCheckpointFormat): SafetensorsTensor[] {
  const { outFeatures: n, inFeatures: k, groupSize: gs } = q;
  const bits = q.spec.bits;
  const maxq = (1 << bits) - 1;
  const groups = k / gs;
  if ((k * bits) % 32 !== 0 || (n * bits) % 32 !== 0) {
    throw new SlimtuneError("E_SHAPE", `layer "${module}" is [${n}, ${k}]; GPTQ packs ${bits}-bit codes into 32-bit words, so K and N must be multiples of 32`);
  }
  const zeros = q.zeros;
  const stored = new Uint8Array(zeros.length);
  for (let i = 0; i < zeros.length; i++) {
    const z = zeros[i]!;
    if (format === "gptq_v2" && z >= 0 && z <= maxq) {
      stored[i] = z;
      continue;
    }
    if (z < 1 || z > maxq) {
      throw new SlimtuneError(
        "E_ARG",
        `zero point ${z} at row ${Math.floor(i / groups)}, group ${i % groups} of "${module}" cannot be stored in a GPTQ v1 checkpoint, which needs 1 ≤ z ≤ ${maxq} (loaders decode a stored 0 − 1 as ${maxq + 1}); quantize with quantizeRtn's default v1SafeZeros`,
      );
    }
    stored[i] = z - 1;
  }
  const scales = float32ToFloat16(transpose(q.scales, n, groups));
  for (let i = 0; i < scales.length; i++) {
    if ((scales[i]! & 0x7c00) === 0x7c00) {
      throw new SlimtuneError("E_ARG", `scale ${q.scales[(i % n) * groups + Math.floor(i / n)]} of "${module}" does not fit in float16 (largest 65504), which GPTQ stores scales in; the weights are out of any trained model's range — check the model`);
    }
  }
  const gIdx = q.groupIndex ? Int32Array.from(q.groupIndex) : new Int32Array(k);
  if (!q.groupIndex) for (let i = 0; i < k; i++) gIdx[i] = Math.floor(i / gs);
  const out: SafetensorsTensor[] = [
    { name: `${module}.qweight`, dtype: "I32", shape: [(k * bits) / 32, n], data: packAlongAxis(transpose(q.codes, n, k), k, n, bits, 0) },
    { name: `${module}.qzeros`, dtype: "I32", shape: [groups, (n * bits) / 32], data: packAlongAxis(transpose(stored, n, groups), groups, n, bits, 1) },
    { name: `${module}.scales`, dtype: "F16", shape: [groups, n], data: scales },
    { name: `${module}.g_idx`, dtype: "I32", shape: [k], data: gIdx },
  ];
  if (q.bias) out.push({ name: `${module}.bias`, dtype: "F16", shape: [n], data: float32ToFloat16(q.bias) });
  return out;
}

/** desc_act of a layer: true when it carries an act-order g_idx. */
const descActOf = (q: QuantizedLinear) => q.kind === "rtn" && q.groupIndex !== undefined;

/** The `dynamic` rules of `qm`: overrides for layers whose spec (or desc_act) differs from the default, "-:" for float layers. */
function dynamicRules(qm: QuantizedModel, defaults: QuantSpec, descAct: boolean): Map<string, DynamicRule> {
  const rules = new Map<string, DynamicRule>();
  for (const { path: module } of linearLayers(qm.config)) {
    const q = qm.linears.get(module);
    if (!q) {
      rules.set(module, { skip: true });
      continue;
    }
    const spec = gridLayer(q, module, "a GPTQ checkpoint").spec;
    if (sameSpec(spec, defaults) && descActOf(q) === descAct) continue;
    const o: { bits?: number; group_size?: number; sym?: boolean; desc_act?: boolean } = {};
    if (spec.bits !== defaults.bits) o.bits = spec.bits;
    if (spec.groupSize !== defaults.groupSize) o.group_size = spec.groupSize === "channel" ? -1 : spec.groupSize;
    if (spec.symmetric !== defaults.symmetric) o.sym = spec.symmetric;
    if (descActOf(q) !== descAct) o.desc_act = descActOf(q);
    rules.set(module, { skip: false, overrides: o });
  }
  return rules;
}

/** Writes `qm` (every quantized layer rtn) to `outDir` as a GPTQ folder (v1 unless asked for v2), replacing it atomically. */
export function saveGptqFolder(outDir: string, qm: QuantizedModel, opts: { checkpointFormat?: GptqCheckpointFormat } = {}): void {
  const format = opts.checkpointFormat ?? "gptq";
  const defaults = gridSpecOf(qm, "a GPTQ checkpoint");
  checkQuantSpec(defaults);
  const notRtn = [...qm.linears].find(([, q]) => q.kind !== "rtn");
  if (qm.spec.scheme !== "rtn" || notRtn) {
    const what = notRtn ? `layer "${notRtn[0]}" has scheme "${notRtn[1].kind}"` : `the model's scheme is "${qm.spec.scheme}"`;
    throw new SlimtuneError("E_ARG", `GPTQ stores integer (rtn) codes, but ${what}; save NF4 models with saveNf4Folder or saveQuantizedFolder`);
  }
  checkQuantizedLinears(qm);
  const tensors = [...denseTensors(qm)];
  for (const [module, q] of qm.linears) tensors.push(...gptqTensors(module, q as RtnLinear, format));
  const all = [...qm.linears.values()];
  const descAct = all.filter(descActOf).length * 2 > all.length;
  const quant = gptqQuantizationConfig(defaults, buildDynamic(dynamicRules(qm, defaults, descAct)), { descAct, method: qm.method, checkpointFormat: format });
  const config = quantizedConfigJson(qm.config, quant, "float16");
  replaceDirAtomic(outDir, (tmp) => {
    writeFileAtomic(path.join(tmp, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
    writeFileAtomic(path.join(tmp, quantizeConfigFile), `${JSON.stringify(quant, null, 2)}\n`);
    writeSafetensors(path.join(tmp, weightsFile), sortForWriting(tensors), { format: "pt" });
    copyTokenizerFiles(qm.sourceDir, tmp);
  });
}

interface GptqSettings {
  spec: QuantSpec;
  descAct: boolean;
  v2: boolean;
  dynamic: DynamicEntry[];
}

const groupSizeOk = (g: number) => g === -1 || quantGroupSizes.includes(g);

const gptqShape = {
  quant_method: z.literal(gptqQuantMethod).optional(),
  bits: z.number().refine(isQuantBits),
  group_size: z.number().refine(groupSizeOk),
  desc_act: z.boolean().optional(),
  sym: z.boolean(),
  checkpoint_format: z.enum(["gptq", "gptq_v2"]).optional(),
  format: z.enum(["gptq", "gptq_v2"]).optional(),
  pack_dtype: z.literal("int32").optional(),
  lm_head: z.literal(false).optional(),
  dynamic: z.unknown().optional(),
};
const gptqExpected = {
  quant_method: '"gptq" — slimtune reads GPTQ and slimtune-nf4 checkpoints',
  bits: "2, 3, 4 or 8 — other widths are not standard GPTQ",
  group_size: `-1 (per output channel) or one of ${quantGroupSizes.join(", ")}`,
  desc_act: "true or false",
  sym: "true or false — add \"sym\" to the config",
  checkpoint_format: '"gptq" (v1 zero points) or "gptq_v2"',
  format: '"gptq" (v1 zero points) or "gptq_v2"',
  pack_dtype: '"int32": slimtune reads int32 words only (what every loader but GPTQModel supports)',
  lm_head: "false: a quantized lm_head is not supported",
  dynamic: "an object of per-module overrides",
};

function gptqSettings(quant: Record<string, unknown>, file: string): GptqSettings {
  const q = parseFields(quant, gptqShape, gptqExpected, { file, prefix: "quantization_config: ", fix: "fix the config or re-quantize with slimtune quantize" });
  const format = q.checkpoint_format ?? q.format ?? "gptq";
  const spec: QuantSpec = { scheme: "rtn", bits: q.bits as QuantBits, groupSize: q.group_size === -1 ? "channel" : q.group_size, symmetric: q.sym };
  return { spec, descAct: q.desc_act ?? false, v2: format === "gptq_v2", dynamic: parseDynamic(q.dynamic, file) };
}

/** The spec and desc_act of `module` after `dynamic`, or null when a "-:" pattern leaves it in float. */
function moduleSpec(s: GptqSettings, module: string, file: string): { spec: QuantSpec; descAct: boolean } | null {
  const hit = matchDynamic(s.dynamic, module);
  if (!hit) return { spec: s.spec, descAct: s.descAct };
  if (hit.rule.skip) return null;
  const o = hit.rule.overrides;
  const where = `quantization_config: "dynamic" override for ${module}`;
  if (o.bits !== undefined && !isQuantBits(o.bits)) throw new SlimtuneError("E_CONFIG", `${where}: "bits" is ${o.bits}; expected 2, 3, 4 or 8`, file);
  if (o.group_size !== undefined && !groupSizeOk(o.group_size)) {
    throw new SlimtuneError("E_CONFIG", `${where}: "group_size" is ${o.group_size}; expected -1 or one of ${quantGroupSizes.join(", ")}`, file);
  }
  const spec: QuantSpec = {
    scheme: "rtn",
    bits: (o.bits ?? s.spec.bits) as QuantBits,
    groupSize: o.group_size === undefined ? s.spec.groupSize : o.group_size === -1 ? "channel" : o.group_size,
    symmetric: o.sym ?? s.spec.symmetric,
  };
  return { spec, descAct: o.desc_act ?? s.descAct };
}

function loadGptqLinear(tensors: FolderTensors, config: LlamaConfig, module: string, spec: QuantSpec, descAct: boolean, v2: boolean, quantFile: string): RtnLinear {
  const [n, k] = linearShape(config, module);
  const bits = spec.bits;
  const gs = spec.groupSize === "channel" ? k : spec.groupSize;
  if (k % gs !== 0) {
    throw new SlimtuneError("E_CONFIG", `quantization_config: "group_size" ${gs} does not divide the ${k} input columns (K) of ${module}; the checkpoint is inconsistent — re-quantize with 32, 64 or -1`, quantFile);
  }
  if ((k * bits) % 32 !== 0 || (n * bits) % 32 !== 0) {
    throw new SlimtuneError("E_CONFIG", `${module} is [${n}, ${k}]; ${bits}-bit GPTQ packing needs K and N to be multiples of 32`, quantFile);
  }
  const groups = k / gs;
  const maxq = (1 << bits) - 1;
  const qweight = tensors.bytes(`${module}.qweight`, ["I32"], [(k * bits) / 32, n], "packed codes");
  const qzeros = tensors.bytes(`${module}.qzeros`, ["I32"], [groups, (n * bits) / 32], "packed zero points");
  const scalesGN = tensors.float32(`${module}.scales`, [groups, n], "scales");
  const gIdx = new Int32Array(tensors.bytes(`${module}.g_idx`, ["I32"], [k], "group of each input row").bytes);
  const groupIndex = checkGroupIndex(gIdx, gs, descAct, module, tensors.fileOf(`${module}.g_idx`));
  const codes = transpose(unpackAlongAxis(new Uint32Array(qweight.bytes), k, n, bits, 0), k, n);
  const storedGN = unpackAlongAxis(new Uint32Array(qzeros.bytes), groups, n, bits, 1);
  // v1 stores z − 1 mod 2^b; masking after +1 (AutoGPTQ's torch path) recovers a true 0 as 0.
  const zeros = transpose(v2 ? storedGN : storedGN.map((v) => (v + 1) & maxq), groups, n);
  if (spec.symmetric) {
    const want = 1 << (bits - 1);
    const bad = zeros.findIndex((z) => z !== want);
    if (bad >= 0) {
      throw new SlimtuneError(
        "E_SAFETENSORS",
        `qzeros of ${module} hold zero point ${zeros[bad]} at row ${Math.floor(bad / groups)}, but sym is true, where every zero point is ${want} (Marlin kernels ignore qzeros) — set "sym": false or re-quantize`,
        tensors.fileOf(`${module}.qzeros`),
      );
    }
  }
  const hasBias = linearLayers(config).find((l) => l.path === module)!.bias;
  const bias = hasBias ? tensors.float32(`${module}.bias`, [n], "bias") : null;
  const layer: RtnLinear = { kind: "rtn", spec, outFeatures: n, inFeatures: k, groupSize: gs, codes, scales: transpose(scalesGN, groups, n), zeros, bias };
  if (groupIndex) layer.groupIndex = groupIndex;
  return layer;
}

/**
 * g_idx as the layer's groupIndex: undefined when it is the plain ⌊k / group_size⌋; with desc_act
 * true any map whose groups each hold exactly group_size rows (what GPTQ's act-order writes).
 */
function checkGroupIndex(gIdx: Int32Array, gs: number, descAct: boolean, module: string, file: string): Int32Array | undefined {
  const k = gIdx.length;
  if (gIdx.every((g, i) => g === Math.floor(i / gs))) return undefined;
  if (!descAct) {
    const i = gIdx.findIndex((g, j) => g !== Math.floor(j / gs));
    throw new SlimtuneError(
      "E_SAFETENSORS",
      `g_idx of ${module} maps input row ${i} to group ${gIdx[i]}; with desc_act false and group_size ${gs === k ? -1 : gs} it must be ${Math.floor(i / gs)} — set "desc_act": true if the checkpoint was made with act-order, or re-quantize`,
      file,
    );
  }
  const groups = k / gs;
  const counts = new Int32Array(groups);
  for (let i = 0; i < k; i++) {
    const g = gIdx[i]!;
    if (g < 0 || g >= groups) {
      throw new SlimtuneError("E_SAFETENSORS", `g_idx of ${module} maps input row ${i} to group ${g}; the layer has groups 0…${groups - 1} — the checkpoint is corrupt, re-quantize`, file);
    }
    counts[g]!++;
  }
  const bad = counts.findIndex((c) => c !== gs);
  if (bad >= 0) {
    throw new SlimtuneError("E_SAFETENSORS", `g_idx of ${module} puts ${counts[bad]} input rows in group ${bad}; slimtune reads act-order checkpoints whose groups each hold group_size = ${gs} rows (as GPTQ writes them) — re-quantize with slimtune quantize --method gptq --act-order`, file);
  }
  return Int32Array.from(gIdx);
}

/** Reads a GPTQ folder (v1 or v2 zero points, desc_act false or act-order g_idx, any `dynamic` overrides) into a QuantizedModel; scales come back as float16 values. */
export function loadGptqFolder(dir: string, opts: DenseLoadOptions = {}): QuantizedModel {
  const { config, quant, quantFile } = readQuantFolderConfig(dir);
  const settings = gptqSettings(quant, quantFile);
  const tensors = FolderTensors.open(dir);
  const linears = new Map<string, QuantizedLinear>();
  for (const { path: module } of linearLayers(config)) {
    const found = moduleSpec(settings, module, quantFile);
    if (found) linears.set(module, loadGptqLinear(tensors, config, module, found.spec, found.descAct, settings.v2, quantFile));
    else if (!tensors.has(`${module}.weight`)) {
      throw new SlimtuneError(
        "E_CONFIG",
        `quantization_config: "dynamic" leaves ${module} unquantized ("-:" pattern), but ${weightsFile} has no float "${module}.weight" — the config and the tensors disagree; re-quantize`,
        quantFile,
      );
    }
  }
  const dense = loadDense(tensors, config, new Set(linears.keys()), opts.skipDense);
  const method = recordedMethod(quant);
  return { config, spec: settings.spec, linears, dense, sourceDir: dir, ...(method ? { method: { name: method } } : {}) };
}

/** How the codes were found, when the folder says (slimtune writes meta.method: rtn, gptq, lqlora); other quantizers' folders do not. */
function recordedMethod(quant: Record<string, unknown>): string | undefined {
  const meta = quant.meta;
  if (!isJsonObject(meta) || typeof meta.method !== "string") return undefined;
  return /^[a-z0-9_-]{1,32}$/.test(meta.method) ? meta.method : undefined;
}
