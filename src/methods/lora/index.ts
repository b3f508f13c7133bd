// LoRA (Hu et al. 2021): a frozen base plus a trainable rank-r update B·A on chosen linear layers;
// the result is a Hugging Face PEFT adapter folder (formats.md §2) that PEFT, vLLM and llama.cpp load.

import path from "node:path";
import type { LlamaConfig } from "../../arch/llama/config.js";
import { FUSED_PARTS, LINEAR_MODULES, type LinearModule, linearLayers } from "../../arch/llama/shapes.js";
import { GPT2_PARTS } from "../../arch/gpt2/names.js";
import { isGpt2 } from "../../arch/llama/config.js";
import type { HostParam, ParamSource } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import { Rng } from "../../core/rng.js";
import type { Graph } from "../../engine/index.js";
import { type PeftLoraConfig, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, isPeftAdapter, loadPeftAdapter, loraKeys, loraScale, savePeftAdapter } from "../../formats/peft.js";
import type { LlamaModel } from "../../models/llama/model.js";
import { DenseParams } from "../../models/llama/params.js";
import { floatBase } from "../base.js";
import { floatFlag, intFlag, listFlag } from "../flags.js";
import { type TuningMethod, defineMethod } from "../method.js";
import { type LoraBranch, LoraParams } from "./lora-params.js";

export { LoraParams, type LoraBranch } from "./lora-params.js";
export { mergeLora, type LoraDelta } from "./merge.js";

/** What LoRA needs from the model it adapts; the base stays frozen, whatever its storage. */
export interface LoraBase {
  config: LlamaConfig;
  /** Frozen weights for a new graph (DenseParams with no inputs, or a quantized base). */
  params: (g: Graph) => ParamSource;
  totalParameters: number;
  /** Written as base_model_name_or_path (llama.cpp's converter needs it). */
  baseName: string | null;
  /** Paths of the linear layers the graph calls through `linear()`, e.g. "model.layers.0.mlp.up_proj". */
  modulePaths: readonly string[];
  outFeatures(path: string): number;
  inFeatures(path: string): number;
}

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** PEFT semantics: names match a module path exactly or as its last `.`-components; a string is a regex over whole paths. Default: all 7. */
  targetModules?: string[] | string;
  /** Seeds A's initialisation. */
  seed: number;
  /** scale = α/√r (rsLoRA) instead of α/r. */
  useRslora?: boolean;
  /** Start from these A/B (PEFT keys), e.g. `loadPeftAdapter(dir).tensors`, instead of the fresh init. */
  initialTensors?: ReadonlyMap<string, HostParam>;
  /** Where `initialTensors` came from, named in error messages. */
  initialSource?: string;
}

export interface LoraMethod extends TuningMethod {
  readonly rank: number;
  readonly alpha: number;
  readonly useRslora: boolean;
  /** α/r, or α/√r under rsLoRA. */
  readonly scale: number;
  /** Module paths that carry a branch, in model order. */
  readonly targets: readonly string[];
  /** What `save` writes to adapter_config.json. */
  readonly adapterConfig: PeftLoraConfig;
}

/**
 * LoRA on `base`. Trainable: A [r, K] ~ N(0, 1/K) (as the PyTorch peer; PEFT's default is
 * Kaiming-uniform, same role: B = 0 makes the start equal the base) and B [N, r] = 0, both keyed by
 * their PEFT names. Weight decay applies to both: transformers' Trainer decays every parameter but
 * biases and norm weights, and A/B are nn.Linear weights (its default weight_decay is 0, as ours).
 */
export function loraMethod(base: LoraBase, opts: LoraOptions, name = "lora"): LoraMethod {
  const { rank, alpha } = opts;
  if (!(Number.isInteger(rank) && rank >= 1)) throw new SlimtuneError("E_ARG", `--rank ${rank} must be a positive integer, e.g. --rank 8`);
  if (!(Number.isFinite(alpha) && alpha > 0)) throw new SlimtuneError("E_ARG", `--alpha ${alpha} must be a positive number, e.g. --alpha 16`);
  const targetModules = fusedTargets(base.modulePaths, opts.targetModules ?? [...LINEAR_MODULES]);
  const targets = matchTargets(base.modulePaths, targetModules);
  const useRslora = opts.useRslora ?? false;
  const scale = loraScale({ r: rank, loraAlpha: alpha, useRslora });

  const rng = new Rng(opts.seed);
  const branches = new Map<string, LoraBranch>();
  const trainable = new Map<string, HostParam>();
  for (const p of targets) {
    const K = base.inFeatures(p);
    const N = base.outFeatures(p);
    const { a, b } = loraKeys(p);
    branches.set(p, { a, b, rank, inFeatures: K, outFeatures: N });
    const A = new Float32Array(rank * K);
    if (!opts.initialTensors) rng.fillNormal(A, 1 / Math.sqrt(K));
    trainable.set(a, { data: A, shape: [rank, K] });
    trainable.set(b, { data: new Float32Array(N * rank), shape: [N, rank] });
  }
  if (opts.initialTensors) copyInitial(trainable, opts.initialTensors, opts.initialSource);

  let count = 0;
  for (const t of trainable.values()) count += t.data.length;
  // GPT-2's layers are Conv1D: PEFT records fan_in_fan_out for them (A and B keep nn.Linear's shapes).
  const adapterConfig: PeftLoraConfig = { r: rank, loraAlpha: alpha, targetModules, baseModelNameOrPath: base.baseName, useRslora, ...(isGpt2(base.config) ? { fanInFanOut: true } : {}) };
  return {
    name,
    config: base.config,
    trainable,
    params: (graph: Graph) => new LoraParams(base.params(graph), branches, scale),
    decay: () => true,
    save: (outDir: string) => savePeftAdapter(outDir, adapterConfig, trainable),
    totalParameters: base.totalParameters + count,
    rank,
    alpha,
    useRslora,
    scale,
    targets,
    adapterConfig,
  };
}

/** PEFT's matching: a list entry equals the path or is a `.`-suffix of it; a string is a full-match regex. */
/**
 * Target names of split layers (q_proj, gate_proj, …) on a model that holds them fused (phi3) name
 * the fused layer instead (qkv_proj, gate_up_proj), as PEFT users of such models write them; the
 * adapter then records the fused names. On gpt2 they name its Conv1D layers (c_attn, c_proj, c_fc).
 * Other models and regexes are left as given.
 */
export function fusedTargets(modulePaths: readonly string[], targetModules: readonly string[] | string): string[] | string {
  if (typeof targetModules === "string") return targetModules;
  const present = new Set(modulePaths.map((p) => p.slice(p.lastIndexOf(".") + 1)));
  const out = targetModules.map((t) => {
    if (present.has(t)) return t;
    const fused = Object.entries({ ...FUSED_PARTS, ...GPT2_PARTS }).find(([name, parts]) => present.has(name) && parts.includes(t as LinearModule));
    return fused ? fused[0] : t;
  });
  return [...new Set(out)];
}

export function matchTargets(modulePaths: readonly string[], targetModules: readonly string[] | string): string[] {
  if (typeof targetModules === "string") {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targetModules})$`);
    } catch (err) {
      throw new SlimtuneError("E_ARG", `target_modules regex ${JSON.stringify(targetModules)} is invalid (${(err as Error).message})`);
    }
    const hits = modulePaths.filter((p) => re.test(p));
    if (hits.length === 0) throw new SlimtuneError("E_ARG", `target_modules regex ${JSON.stringify(targetModules)} matches no linear layer, e.g. "${modulePaths[0] ?? ""}"`);
    return hits;
  }
  if (targetModules.length === 0) throw new SlimtuneError("E_ARG", `--targets is empty; name at least one of ${leafNames(modulePaths)}`);
  const matches = (p: string, t: string) => p === t || p.endsWith(`.${t}`);
  for (const t of targetModules) {
    if (!modulePaths.some((p) => matches(p, t))) {
      throw new SlimtuneError("E_ARG", `--targets "${t}" matches no linear layer of the model; choose from ${leafNames(modulePaths)}`);
    }
  }
  return modulePaths.filter((p) => targetModules.some((t) => matches(p, t)));
}

function leafNames(modulePaths: readonly string[]): string {
  return [...new Set(modulePaths.map((p) => p.slice(p.lastIndexOf(".") + 1)))].join(", ");
}

function copyInitial(trainable: Map<string, HostParam>, initial: ReadonlyMap<string, HostParam>, source?: string): void {
  for (const key of initial.keys()) {
    if (!trainable.has(key)) {
      throw new SlimtuneError("E_CONFIG", `adapter tensor "${key}" adapts a module outside target_modules; the adapter's tensors and config disagree`, source);
    }
  }
  for (const [key, t] of trainable) {
    const init = initial.get(key);
    if (!init) throw new SlimtuneError("E_CONFIG", `adapter has no "${key}", though target_modules covers that module; re-save the adapter`, source);
    if (init.shape.length !== t.shape.length || init.shape.some((d, i) => d !== t.shape[i]) || init.data.length !== t.data.length) {
      throw new SlimtuneError(
        "E_SHAPE",
        `adapter tensor "${key}" has shape [${init.shape.join(", ")}], the model needs [${t.shape.join(", ")}]; use the adapter with the base model (and r) it was trained with`,
        source,
      );
    }
    t.data.set(init.data);
  }
}

/** A float model as a frozen LoRA base: every weight baked in as a constant. */
export function denseLoraBase(model: LlamaModel, baseName?: string | null): LoraBase {
  const layers = new Map(linearLayers(model.config).map((l) => [l.path, l]));
  const layer = (p: string) => {
    const l = layers.get(p);
    if (!l) throw new SlimtuneError("E_ARG", `the model has no linear layer "${p}"`);
    return l;
  };
  return {
    config: model.config,
    params: (g) => new DenseParams(g, model.weights, new Set()),
    totalParameters: model.parameterCount,
    baseName: baseName !== undefined ? baseName : model.sourceDir ? path.resolve(model.sourceDir) : null,
    modulePaths: [...layers.keys()],
    outFeatures: (p) => layer(p).outFeatures,
    inFeatures: (p) => layer(p).inFeatures,
  };
}

/** LoRA on a float model loaded from a Hugging Face folder. */
export function loraForDenseModel(model: LlamaModel, opts: LoraOptions, baseName?: string | null): LoraMethod {
  return loraMethod(denseLoraBase(model, baseName), opts);
}

/** A saved PEFT adapter on `base`, ready to evaluate or to train further (r, α, targets from its config). */
export function loraFromAdapter(base: LoraBase, adapterDir: string, opts: { seed?: number; name?: string } = {}): LoraMethod {
  const adapter = loadPeftAdapter(adapterDir);
  const c = adapter.config;
  if (c.fanInFanOut && !isGpt2(base.config)) {
    // fan_in_fan_out says the base layers store W as [in, out] (Conv1D); this model's are nn.Linear.
    throw new SlimtuneError("E_CONFIG", `fan_in_fan_out is true (an adapter for Conv1D layers, GPT-2), but the base is ${base.config.modelType}; use the adapter with the base model it was trained on`, path.join(adapterDir, PEFT_CONFIG_FILE));
  }
  try {
    matchTargets(base.modulePaths, c.targetModules);
  } catch (err) {
    if (!(err instanceof SlimtuneError)) throw err;
    throw new SlimtuneError("E_CONFIG", `target_modules: ${err.message.replace(/^--targets /, "")}; use the adapter with the base model it was trained on`, path.join(adapterDir, PEFT_CONFIG_FILE));
  }
  return loraMethod(
    base,
    {
      rank: c.r,
      alpha: c.loraAlpha,
      targetModules: c.targetModules,
      useRslora: c.useRslora ?? false,
      seed: opts.seed ?? 0,
      initialTensors: adapter.tensors,
      initialSource: path.join(adapterDir, PEFT_WEIGHTS_FILE),
    },
    opts.name,
  );
}

/** LoRA's own flags; QLoRA shares them, FineGates takes alpha and targets for its inner branch. */
export const loraFlags = {
  rank: intFlag(8, "LoRA rank", { min: 1 }),
  alpha: floatFlag(16, "LoRA alpha (scale = alpha / rank)", { min: 0 }),
  targets: listFlag(LINEAR_MODULES, "LoRA target modules, comma-separated"),
};

export const loraDefinition = defineMethod({
  name: "lora",
  defaultLr: 1e-3,
  summary: "frozen float base + trainable rank-r B·A on the --targets layers (PEFT adapter folder)",
  needs: "float",
  flags: loraFlags,
  create: (base, o, ctx) => {
    const model = floatBase(base, "lora");
    return ctx.adapter
      ? loraFromAdapter(denseLoraBase(model), ctx.adapter)
      : loraForDenseModel(model, { rank: o.rank, alpha: o.alpha, targetModules: o.targets, seed: ctx.seed });
  },
  adapter: {
    detect: isPeftAdapter,
    load: (base, dir) => loraFromAdapter(denseLoraBase(floatBase(base, "lora")), dir),
  },
});
