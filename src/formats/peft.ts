// Hugging Face PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors), written
// so PEFT, vLLM and llama.cpp's convert_lora_to_gguf.py load them as they are (formats.md §2).

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { SlimtuneError, quote } from "../core/errors.js";
import { parseFields, readJsonObject, shownJson } from "../core/json.js";
import { replaceDirAtomic, writeFileAtomic } from "../core/atomic.js";
import { linearLayers } from "../arch/llama/shapes.js";
import { SafetensorsFile, encodeSafetensors } from "./safetensors.js";
import type { LlamaConfig } from "../arch/llama/config.js";

export const PEFT_CONFIG_FILE = "adapter_config.json";
export const PEFT_WEIGHTS_FILE = "adapter_model.safetensors";

/** True when `dir` holds a PEFT adapter (its adapter_config.json). */
export function isPeftAdapter(dir: string): boolean {
  return fs.existsSync(path.join(dir, PEFT_CONFIG_FILE));
}

/** A tensor as slimtune holds it: float32 values, PyTorch shape. */
export interface PeftTensor {
  data: Float32Array;
  shape: number[];
}

/** The LoRA settings slimtune writes and reads; the rest of adapter_config.json stays at PEFT's defaults. */
export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  /** Module names matched as PEFT does (exact, or a `.name` suffix), or one regex matched against whole paths. */
  targetModules: string[] | string;
  /** The base model (hub id or folder); llama.cpp's converter needs it. */
  baseModelNameOrPath: string | null;
  /** scale = α/√r instead of α/r. */
  useRslora?: boolean;
  revision?: string | null;
  /** PEFT's fan_in_fan_out: the base layers are Conv1D (GPT-2), weights [in, out]; A and B keep their shapes. */
  fanInFanOut?: boolean;
}

export interface PeftAdapter {
  config: PeftLoraConfig;
  /** adapter_config.json as read, every key (snake_case). */
  raw: Record<string, unknown>;
  /** Keyed `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`, sorted by key. */
  tensors: Map<string, PeftTensor>;
}

// PEFT's saved key: PeftModel → LoraModel → the HF model, adapter name stripped (formats.md §2.3-2.4).
const KEY_PREFIX = "base_model.model.";
const KEY_RE = /^(.+)\.lora_([AB])\.weight$/;

export function loraKeys(modulePath: string): { a: string; b: string } {
  return { a: `${KEY_PREFIX}${modulePath}.lora_A.weight`, b: `${KEY_PREFIX}${modulePath}.lora_B.weight` };
}

/** The module path and half of a saved LoRA key, or null if it is not a `lora_A/B.weight` key. */
export function parseLoraKey(key: string): { modulePath: string; half: "A" | "B" } | null {
  const m = KEY_RE.exec(key);
  if (!m) return null;
  const full = m[1]!;
  return { modulePath: full.startsWith(KEY_PREFIX) ? full.slice(KEY_PREFIX.length) : full, half: m[2] as "A" | "B" };
}

/** scale = α/r, or α/√r under rsLoRA (PEFT's LoraLayer.update_layer). */
export function loraScale(config: Pick<PeftLoraConfig, "r" | "loraAlpha" | "useRslora">): number {
  return config.useRslora ? config.loraAlpha / Math.sqrt(config.r) : config.loraAlpha / config.r;
}

/**
 * adapter_config.json as PEFT 0.17's `LoraConfig.save_pretrained` writes it: every field of the
 * dataclass explicit (so no reader falls back to a different default), minus `runtime_config`.
 * `peft_version` is left out: it records the writing PEFT's version and we are not PEFT.
 */
export function peftConfigJson(config: PeftLoraConfig): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: config.baseModelNameOrPath,
    bias: "none",
    corda_config: null,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: config.fanInFanOut ?? false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.loraAlpha,
    lora_bias: false,
    lora_dropout: 0,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    qalora_group_size: 16,
    r: config.r,
    rank_pattern: {},
    revision: config.revision ?? null,
    // PEFT keeps a set and writes it in arbitrary order; sorted keeps our output reproducible.
    target_modules: typeof config.targetModules === "string" ? config.targetModules : [...new Set(config.targetModules)].sort(),
    target_parameters: null,
    task_type: "CAUSAL_LM",
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: config.useRslora ?? false,
  };
}

/** Python's json.dumps(obj, indent=2, sort_keys=True): sorted keys at every level, non-ASCII escaped. */
function pythonJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return JSON.stringify(sorted(value), null, 2).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Writes a PEFT LoRA adapter folder, replacing `outDir` atomically. Tensors must be complete
 * A [r, K] / B [N, r] pairs under their saved keys (see `loraKeys`).
 */
export function savePeftAdapter(outDir: string, config: PeftLoraConfig, tensors: ReadonlyMap<string, PeftTensor>): void {
  if (!(Number.isInteger(config.r) && config.r >= 1)) throw new SlimtuneError("E_ARG", `LoRA rank r = ${config.r} must be a positive integer`);
  if (!(Number.isFinite(config.loraAlpha) && config.loraAlpha > 0)) {
    throw new SlimtuneError("E_ARG", `lora_alpha = ${config.loraAlpha} must be a positive number`);
  }
  checkPairs(config.r, tensors, (code, message) => new SlimtuneError(code === "E_SAFETENSORS" ? "E_ARG" : code, message, outDir));
  const files = peftAdapterFiles(config, tensors);
  replaceDirAtomic(outDir, (tmp) => {
    for (const [name, chunks] of files) writeFileAtomic(path.join(tmp, name), chunks);
  });
}

/** The two files of a PEFT adapter folder as bytes, by file name (what savePeftAdapter writes; a page downloads them). */
export function peftAdapterFiles(config: PeftLoraConfig, tensors: ReadonlyMap<string, PeftTensor>): Map<string, Uint8Array[]> {
  const names = [...tensors.keys()].sort();
  const weights = encodeSafetensors(
    names.map((name) => {
      const t = tensors.get(name)!;
      return { name, dtype: "F32", shape: t.shape, data: t.data };
    }),
    { format: "pt" },
  );
  // Python writes the float default as 0.0; JSON.stringify cannot tell 0 from 0.0.
  const json = pythonJson(peftConfigJson(config)).replace('\n  "lora_dropout": 0,\n', '\n  "lora_dropout": 0.0,\n');
  return new Map([
    [PEFT_WEIGHTS_FILE, weights],
    [PEFT_CONFIG_FILE, [new TextEncoder().encode(json)]],
  ]);
}

export interface LoadPeftOptions {
  /** Check every tensor's shape against this model's linear layers ([r, K] and [N, r]). */
  config?: LlamaConfig;
}

/** Reads and validates a PEFT LoRA adapter folder. */
export function loadPeftAdapter(dir: string, opts: LoadPeftOptions = {}): PeftAdapter {
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new SlimtuneError("E_NOT_FOUND", "adapter folder not found; pass a PEFT adapter folder with adapter_config.json and adapter_model.safetensors", dir);
  }
  const configFile = path.join(dir, PEFT_CONFIG_FILE);
  const weightsFile = path.join(dir, PEFT_WEIGHTS_FILE);
  const { config, raw } = readConfig(configFile);
  if (!fs.existsSync(weightsFile)) {
    const hint = fs.existsSync(path.join(dir, "adapter_model.bin"))
      ? "the folder has adapter_model.bin (pickle), which slimtune does not read; re-save it with PEFT's save_pretrained(safe_serialization=True)"
      : "the folder holds no adapter weights; copy adapter_model.safetensors next to adapter_config.json";
    throw new SlimtuneError("E_NOT_FOUND", `file does not exist; ${hint}`, weightsFile);
  }
  return { config, raw, tensors: loraTensors(SafetensorsFile.open(weightsFile), weightsFile, config, opts) };
}

/**
 * The same checks on an adapter's two files in memory (a web page's picked files): `configJson`
 * is adapter_config.json's object, `weights` adapter_model.safetensors' bytes.
 */
export function parsePeftAdapter(configJson: Record<string, unknown>, weights: Uint8Array, opts: LoadPeftOptions = {}): PeftAdapter {
  const { config, raw } = configFromJson(configJson, PEFT_CONFIG_FILE);
  return { config, raw, tensors: loraTensors(SafetensorsFile.fromBytes(PEFT_WEIGHTS_FILE, weights), PEFT_WEIGHTS_FILE, config, opts) };
}

function loraTensors(file: SafetensorsFile, weightsFile: string, config: PeftLoraConfig, opts: LoadPeftOptions): Map<string, PeftTensor> {
  const tensors = new Map<string, PeftTensor>();
  for (const key of file.names().sort()) {
    const parsed = parseLoraKey(key);
    if (!parsed) {
      // vLLM's words for the same rejection; llama.cpp's converter aborts on such keys too.
      throw new SlimtuneError(
        "E_SAFETENSORS",
        `unsupported LoRA weight ${quote(key)}: slimtune reads only <module>.lora_A.weight and <module>.lora_B.weight (no DoRA magnitudes, embedding LoRA, biases or modules_to_save)`,
        weightsFile,
      );
    }
    const saved = loraKeys(parsed.modulePath)[parsed.half === "A" ? "a" : "b"];
    if (tensors.has(saved)) throw new SlimtuneError("E_SAFETENSORS", `${quote(key)} appears twice (with and without the base_model.model. prefix)`, weightsFile);
    tensors.set(saved, { data: file.float32(key), shape: [...file.entries.get(key)!.shape] });
  }
  if (tensors.size === 0) throw new SlimtuneError("E_SAFETENSORS", "holds no LoRA tensors; re-save the adapter", weightsFile);
  checkPairs(config.r, tensors, (code, message) => new SlimtuneError(code, message, weightsFile));
  if (opts.config) checkAgainstModel(weightsFile, tensors, opts.config);
  return tensors;
}

type MakeError = (code: "E_SHAPE" | "E_SAFETENSORS", message: string) => SlimtuneError;

/** Every module has both halves, A is [r, K] and B is [N, r] with the config's r. */
function checkPairs(r: number, tensors: ReadonlyMap<string, PeftTensor>, error: MakeError): void {
  for (const [key, t] of tensors) {
    const parsed = parseLoraKey(key);
    if (!parsed) throw error("E_SAFETENSORS", `unsupported LoRA weight ${quote(key)}; keys must end in .lora_A.weight or .lora_B.weight`);
    const { a, b } = loraKeys(parsed.modulePath);
    if (key !== (parsed.half === "A" ? a : b)) throw error("E_SAFETENSORS", `${quote(key)} must be spelled ${quote(parsed.half === "A" ? a : b)}, as PEFT saves it`);
    const other = parsed.half === "A" ? b : a;
    if (!tensors.has(other)) throw error("E_SAFETENSORS", `${quote(key)} has no partner ${quote(other)}; every LoRA module needs both lora_A and lora_B`);
    const expected = parsed.half === "A" ? `[${r}, K]` : `[N, ${r}]`;
    const rankAxis = parsed.half === "A" ? 0 : 1;
    if (t.shape.length !== 2 || t.shape[rankAxis] !== r) {
      throw error("E_SHAPE", `${quote(key)} has shape [${t.shape.join(", ")}], expected ${expected} for r = ${r}; the tensors and adapter_config.json's r disagree`);
    }
    if (t.data.length !== t.shape[0]! * t.shape[1]!) {
      throw error("E_SHAPE", `${quote(key)} has ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    }
  }
}

/** A [r, K] and B [N, r] must fit the model's W [N, K] at the same module path. */
function checkAgainstModel(file: string, tensors: ReadonlyMap<string, PeftTensor>, config: LlamaConfig): void {
  const linears = new Map(linearLayers(config).map((l) => [l.path, [l.outFeatures, l.inFeatures] as const]));
  for (const [key, t] of tensors) {
    const { modulePath, half } = parseLoraKey(key)!;
    const w = linears.get(modulePath);
    if (!w) {
      throw new SlimtuneError(
        "E_SHAPE",
        `${quote(key)} adapts ${quote(modulePath)}, which is not a linear layer of this ${config.numLayers}-layer ${config.modelType} model; use the adapter with the base model it was trained on`,
        file,
      );
    }
    const [N, K] = w;
    const ok = half === "A" ? t.shape[1] === K : t.shape[0] === N;
    if (!ok) {
      const expected = half === "A" ? `[r, ${K}]` : `[${N}, r]`;
      throw new SlimtuneError(
        "E_SHAPE",
        `${quote(key)} has shape [${t.shape.join(", ")}], but ${modulePath} is [${N}, ${K}] (out, in) so lora_${half} must be ${expected}; use the adapter with the base model it was trained on`,
        file,
      );
    }
  }
}

// Options that change what the adapter computes; a folder using them would load but compute wrongly.
const unsupported: Array<[key: string, isDefault: (v: unknown) => boolean, what: string]> = [
  ["use_dora", (v) => v === undefined || v === false, "DoRA (use_dora: true)"],
  ["lora_bias", (v) => v === undefined || v === false, "lora_bias: true"],
  ["use_qalora", (v) => v === undefined || v === false, "QA-LoRA (use_qalora: true)"],
  ["modules_to_save", isEmpty, "modules_to_save (fully trained extra modules)"],
  ["rank_pattern", isEmpty, "rank_pattern (per-module ranks)"],
  ["alpha_pattern", isEmpty, "alpha_pattern (per-module alphas)"],
  ["layers_to_transform", isEmpty, "layers_to_transform"],
  ["layer_replication", isEmpty, "layer_replication"],
  ["exclude_modules", isEmpty, "exclude_modules"],
  ["trainable_token_indices", isEmpty, "trainable_token_indices"],
  ["target_parameters", isEmpty, "target_parameters"],
];

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === "object" && Object.keys(v).length === 0;
}

const configShape = {
  peft_type: z.literal("LORA"),
  r: z.number().int().min(1),
  lora_alpha: z.number().positive(),
  target_modules: z.union([z.string(), z.array(z.string()).min(1)]),
  use_rslora: z.boolean().optional(),
  base_model_name_or_path: z.string().nullish(),
  revision: z.string().nullish(),
  fan_in_fan_out: z.boolean().nullish(),
};
const configExpected = {
  peft_type: '"LORA"; slimtune loads LoRA adapters only',
  r: "a positive integer (vLLM requires it too)",
  lora_alpha: "a positive number (vLLM and llama.cpp require it too)",
  target_modules: "a list of module names or a regex (vLLM requires it too)",
  use_rslora: "true or false",
  base_model_name_or_path: "a model id or folder, or null",
  revision: "a revision string, or null",
  fan_in_fan_out: "true (Conv1D base layers, GPT-2) or false",
};

function readConfig(file: string): { config: PeftLoraConfig; raw: Record<string, unknown> } {
  const raw = readJsonObject(file, {
    missingFix: "a PEFT adapter folder needs adapter_config.json beside adapter_model.safetensors",
    invalidFix: "re-save the adapter",
  });
  return configFromJson(raw, file);
}

function configFromJson(raw: Record<string, unknown>, file: string): { config: PeftLoraConfig; raw: Record<string, unknown> } {
  // PEFT's own key names, as PEFT users know them (adapter_config.json: "r is 0; expected …").
  const c = parseFields(raw, configShape, configExpected, { file, label: (f) => f, missing: "undefined", fix: "re-save the adapter with PEFT or slimtune" });
  for (const [key, isDefault, what] of unsupported) {
    if (!isDefault(raw[key])) throw new SlimtuneError("E_CONFIG", `${key} is ${shownJson(raw[key])}: slimtune does not support ${what}; retrain without it`, file);
  }
  return {
    raw,
    config: {
      r: c.r,
      loraAlpha: c.lora_alpha,
      targetModules: typeof c.target_modules === "string" ? c.target_modules : [...c.target_modules],
      baseModelNameOrPath: c.base_model_name_or_path ?? null,
      useRslora: c.use_rslora === true,
      revision: c.revision ?? null,
      ...(c.fan_in_fan_out ? { fanInFanOut: true } : {}),
    },
  };
}
