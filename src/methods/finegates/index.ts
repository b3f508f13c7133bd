// FineGates (Svirsky, Refael, Lindenbaum 2024): stochastic row and column gates on frozen linear
// layers (optionally with a LoRA branch inside them) that adapt the model under a relaxed-L0
// penalty, after which gated-off rows and columns are physically removed.

import path from "node:path";
import { SlimtuneError } from "../../errors.js";
import type { Graph, HostTensor } from "../../engine/index.js";
import { writeSafetensors } from "../../formats/safetensors.js";
import { LlamaModel } from "../../models/llama/model.js";
import { DenseParams, type HostParam } from "../../models/llama/params.js";
import { writeFileAtomic } from "../../util/atomic.js";
import type { Rng } from "../../util/rng.js";
import { LORA_ALL_TARGETS, loraForDenseModel, matchTargets, mergeLora } from "../lora/index.js";
import type { TuningMethod } from "../method.js";
import { GatedParams, type GateSettings, gateName, gateValues, noiseName } from "./gated-params.js";
import { type LayerGates, type PruneReport, pruneWithGates } from "./prune.js";

export interface FineGatesOptions extends GateSettings {
  /** 0: gates only; > 0: a LoRA branch of this rank inside the gates. */
  loraRank: number;
  loraAlpha: number;
  targets: string[];
  seed: number;
}

export const defaultFineGatesOptions: Omit<FineGatesOptions, "seed"> = {
  targetSparsity: 0.2,
  lambda: 1e-2,
  sigma: 0.5,
  loraRank: 0,
  loraAlpha: 16,
  targets: [...LORA_ALL_TARGETS],
};

export interface FineGatesMethod extends TuningMethod {
  /** Evaluation-mode gate values of every gated layer. */
  gates(): Map<string, LayerGates>;
  /** The dense model with LoRA merged and gates folded and removed. */
  prune(): { model: LlamaModel; report: PruneReport };
}

export function fineGatesMethod(model: LlamaModel, opts: FineGatesOptions): FineGatesMethod {
  const { targetSparsity, lambda, sigma } = opts;
  if (!(targetSparsity > 0 && targetSparsity < 1)) {
    throw new SlimtuneError("E_ARG", `--target-sparsity ${targetSparsity} must lie strictly between 0 and 1, e.g. 0.3 to remove 30 %`);
  }
  if (!(lambda >= 0)) throw new SlimtuneError("E_ARG", `--lambda ${lambda} must be >= 0`);
  if (!(sigma > 0)) throw new SlimtuneError("E_ARG", `--gate-sigma ${sigma} must be > 0`);
  const modulePaths = [...model.weights.keys()].filter((n) => /\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n)).map((n) => n.slice(0, -".weight".length));
  const layers = new Map<string, readonly [number, number]>();
  for (const p of matchTargets(modulePaths, opts.targets)) {
    const [N, K] = model.weights.get(`${p}.weight`)!.shape as [number, number];
    layers.set(p, [N, K]);
  }
  const lora = opts.loraRank > 0 ? loraForDenseModel(model, { rank: opts.loraRank, alpha: opts.loraAlpha, targetModules: opts.targets, seed: opts.seed }) : null;

  // μ = 0.5 puts every gate at clamp(1 + ε): open.
  const gateParams = new Map<string, HostParam>();
  for (const [p, [N, K]] of layers) {
    gateParams.set(gateName(p, "row"), { data: new Float32Array(N).fill(0.5), shape: [N] });
    gateParams.set(gateName(p, "col"), { data: new Float32Array(K).fill(0.5), shape: [K] });
  }
  const trainable = new Map<string, HostParam>([...gateParams, ...(lora?.trainable ?? [])]);
  const frozen = (g: Graph) => new DenseParams(g, model.weights, new Set());
  const noise = new Map([...layers].flatMap(([p, [N, K]]) => [
    [noiseName(p, "row"), new Float32Array(N)],
    [noiseName(p, "col"), new Float32Array(K)],
  ]));

  const gates = () => {
    const out = new Map<string, LayerGates>();
    for (const p of layers.keys()) {
      out.set(p, { row: gateValues(gateParams.get(gateName(p, "row"))!.data), col: gateValues(gateParams.get(gateName(p, "col"))!.data) });
    }
    return out;
  };
  const prune = () => {
    let base = model;
    if (lora) {
      const merged = new Map([...model.weights].map(([k, w]) => [k, { data: Float32Array.from(w.data), shape: w.shape }]));
      mergeLora(merged, { scale: lora.scale, tensors: lora.trainable });
      base = new LlamaModel(model.config, merged, model.sourceDir);
    }
    return pruneWithGates(base, gates());
  };

  let total = model.parameterCount;
  for (const t of trainable.values()) total += t.data.length;
  return {
    name: opts.loraRank > 0 ? "finegates-lora" : "finegates",
    config: model.config,
    trainable,
    params: (graph: Graph, mode = "eval") => new GatedParams(lora ? lora.params(graph) : frozen(graph), layers, { sigma, lambda, targetSparsity }, mode === "train"),
    stepFeeds: (rng: Rng): Record<string, HostTensor> => {
      const feeds: Record<string, HostTensor> = {};
      for (const [name, buf] of noise) {
        rng.fillNormal(buf, sigma);
        feeds[name] = { data: buf, shape: [buf.length] };
      }
      return feeds;
    },
    // Decay would drag μ toward 0, i.e. half-closed gates; LoRA factors decay as in the LoRA method.
    decay: (name) => !name.startsWith("finegates."),
    save: (outDir: string) => {
      const { model: pruned, report } = prune();
      pruned.save(outDir);
      writeSafetensors(
        path.join(outDir, "finegates.safetensors"),
        [...gateParams].map(([name, p]) => ({ name, dtype: "F32" as const, shape: p.shape, data: p.data })),
        { format: "pt" },
      );
      writeFileAtomic(path.join(outDir, "finegates.json"), `${JSON.stringify({ target_sparsity: targetSparsity, lambda, sigma, lora_rank: opts.loraRank, ...report }, null, 1)}\n`);
    },
    totalParameters: total,
    gates,
    prune,
  };
}
