// FineGates (Svirsky, Refael, Lindenbaum 2024): stochastic row and column gates on frozen linear
// layers (optionally with a LoRA branch inside them) that adapt the model under a relaxed-L0
// penalty, after which gated-off rows and columns are physically removed.

import path from "node:path";
import { layerShape } from "../../arch/llama/config.js";
import { assertPrunable } from "../../arch/llama/groups.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import type { Rng } from "../../core/rng.js";
import type { Graph, HostTensor } from "../../engine/index.js";
import { type FineGatesRun, isFineGatesRun, loadFineGatesRun, saveFineGatesRun } from "../../formats/finegates-run.js";
import { LlamaModel } from "../../models/llama/model.js";
import { DenseParams } from "../../models/llama/params.js";
import type { PruneReport } from "../../prune/surgery.js";
import { floatBase } from "../base.js";
import { type FlagValues, boolFlag, flagDefaults, floatFlag, intFlag } from "../flags.js";
import { loraFlags, loraForDenseModel, mergeLora } from "../lora/index.js";
import { type TuningMethod, defineMethod } from "../method.js";
import { type GateLayout, GatedParams, channelGate, gateValues, headGate, isInputSide, isOutputSide, noiseOf, residualGate } from "./gated-params.js";
import { type LayerGates, pruneWithGates } from "./removal.js";

/**
 * FineGates' flags, the one place their defaults live. Gate learning rate: a gate must travel from
 * μ = 0.5 (open) to −0.5 (closed), which Adam's ~lr-per-step moves cannot do in a short run at an
 * adapter's lr. Hardening: after training, close the lowest-gated MLP channels and key/value groups
 * of each layer up to the target (gates already at 0 count first); without it only gates that
 * reached 0 are removed, which a short run rarely produces (the mean-targeting penalty shrinks
 * gates together).
 */
export const fineGatesFlags = {
  targetSparsity: floatFlag(0.2, "finegates: fraction of each layer's channels and heads to remove", { min: 0 }),
  lambda: floatFlag(1e-2, "finegates: weight of the relaxed-L0 penalty", { min: 0 }),
  // methods.md's σ ≈ 0.1; measured on SST-2 (docs/results/finegates.md) it also beats 0.5 by 6 points.
  sigma: floatFlag(0.1, "finegates: std of the gate noise", { min: 0, cli: "gate-sigma" }),
  gateLrScale: floatFlag(20, "finegates: gates' learning rate as a multiple of --lr", { min: 0 }),
  loraRank: intFlag(0, "finegates: rank of a LoRA branch inside the gates (0: none)", { min: 0 }),
  loraAlpha: { ...loraFlags.alpha, cli: "alpha" },
  targets: loraFlags.targets,
  residualGates: boolFlag(true, "finegates: also gate residual-side rows/columns (adaptation only, never removed)"),
  hardenToTarget: boolFlag(true, "finegates: close the lowest channels/groups up to the target after training (else only gates at 0 go)", { cli: "harden" }),
};

export type FineGatesOptions = FlagValues<typeof fineGatesFlags> & { seed: number };

export const defaultFineGatesOptions: Omit<FineGatesOptions, "seed"> = flagDefaults(fineGatesFlags);

export interface FineGatesMethod extends TuningMethod {
  /** Evaluation-mode gates as row/column vectors of each linear layer. */
  gates(): Map<string, LayerGates>;
  /** The dense model with LoRA merged and gates folded and removed. */
  prune(): { model: LlamaModel; report: PruneReport };
  /** Closes (μ = −0.5) the lowest channels and key/value groups of each layer up to the target; returns how many units it closed. */
  hardenGates(): { channels: number; heads: number };
}

/**
 * FineGates on `model`. `initial` (gate μ and LoRA factors by name, e.g. a saved run's tensors)
 * replaces the fresh initialisation; every tensor must fit this model's layout.
 */
export function fineGatesMethod(model: LlamaModel, opts: FineGatesOptions, initial?: { tensors: ReadonlyMap<string, HostParam>; source: string }): FineGatesMethod {
  assertPrunable(model.config, "--method finegates");
  const { targetSparsity, lambda, sigma } = opts;
  if (!(targetSparsity > 0 && targetSparsity < 1)) {
    throw new SlimtuneError("E_ARG", `--target-sparsity ${targetSparsity} must lie strictly between 0 and 1, e.g. 0.3 to remove 30 %`);
  }
  if (!(lambda >= 0)) throw new SlimtuneError("E_ARG", `--lambda ${lambda} must be >= 0`);
  if (!(sigma > 0)) throw new SlimtuneError("E_ARG", `--gate-sigma ${sigma} must be > 0`);
  const config = model.config;
  const layout: GateLayout = { layers: [], residual: new Map() };
  for (let i = 0; i < config.numLayers; i++) {
    const { numHeads, intermediateSize } = layerShape(config, i);
    layout.layers.push({ prefix: `model.layers.${i}`, channels: intermediateSize, heads: numHeads, headDim: config.headDim });
  }
  if (opts.residualGates) {
    for (const l of linearLayers(config)) layout.residual.set(l.path, [l.outFeatures, l.inFeatures]);
  }
  const lora =
    opts.loraRank > 0
      ? loraForDenseModel(model, {
          rank: opts.loraRank,
          alpha: opts.loraAlpha,
          targetModules: opts.targets,
          seed: opts.seed,
          ...(initial ? { initialTensors: new Map([...initial.tensors].filter(([n]) => !n.startsWith("finegates."))), initialSource: initial.source } : {}),
        })
      : null;

  // μ = 0.5 puts every gate at clamp(1 + ε): open.
  const gateParams = new Map<string, HostParam>();
  const open = (n: number): HostParam => ({ data: new Float32Array(n).fill(0.5), shape: [n] });
  for (const l of layout.layers) {
    if (l.channels > 0) gateParams.set(channelGate(l.prefix), open(l.channels));
    if (l.heads > 0) gateParams.set(headGate(l.prefix), open(l.heads));
  }
  for (const [p, [N, K]] of layout.residual) {
    if (isOutputSide(p)) gateParams.set(residualGate(p, "row"), open(N));
    if (isInputSide(p)) gateParams.set(residualGate(p, "col"), open(K));
  }
  if (initial) restoreGates(gateParams, initial.tensors, initial.source);
  const trainable = new Map<string, HostParam>([...gateParams, ...(lora?.trainable ?? [])]);
  /** μ as training left them, before hardening closes the lowest units: what a saved run keeps. */
  let trained: Map<string, HostParam> | null = null;
  const snapshot = () => new Map([...trainable].map(([n, p]) => [n, { data: Float32Array.from(p.data), shape: p.shape }]));
  const frozen = (g: Graph) => new DenseParams(g, model.weights, new Set());
  const noise = new Map([...gateParams].map(([name, p]) => [noiseOf(name), new Float32Array(p.data.length)]));
  const z = (name: string) => gateValues(gateParams.get(name)!.data);

  /** Evaluation-mode gates as per-layer row/column vectors, the form removal folds into weights. */
  const gates = () => {
    const out = new Map<string, LayerGates>();
    const ones = (n: number) => new Float32Array(n).fill(1);
    const entry = (p: string) => {
      let e = out.get(p);
      if (!e) {
        const [N, K] = model.weights.get(`${p}.weight`)!.shape as [number, number];
        const r = layout.residual.has(p);
        e = { row: r && isOutputSide(p) ? z(residualGate(p, "row")) : ones(N), col: r && isInputSide(p) ? z(residualGate(p, "col")) : ones(K) };
        out.set(p, e);
      }
      return e;
    };
    for (const p of layout.residual.keys()) entry(p);
    for (const l of layout.layers) {
      if (l.channels > 0) entry(`${l.prefix}.mlp.down_proj`).col = z(channelGate(l.prefix));
      if (l.heads > 0) {
        const perHead = z(headGate(l.prefix));
        entry(`${l.prefix}.self_attn.o_proj`).col = Float32Array.from({ length: l.heads * l.headDim }, (_, j) => perHead[Math.floor(j / l.headDim)]!);
      }
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

  const hardenGates = () => {
    const closed = { channels: 0, heads: 0 };
    const closeLowest = (units: number, count: number, score: (i: number) => number, close: (i: number) => void) => {
      const order = [...Array(units).keys()].sort((a, b) => score(a) - score(b));
      for (const i of order.slice(0, count)) close(i);
      return count;
    };
    for (const l of layout.layers) {
      if (l.channels > 0) {
        const mu = gateParams.get(channelGate(l.prefix))!.data;
        const already = mu.filter((m) => m <= -0.5).length;
        const count = Math.max(already, Math.round(targetSparsity * l.channels));
        closed.channels += closeLowest(l.channels, count, (i) => mu[i]!, (i) => (mu[i] = Math.min(mu[i]!, -0.5))) - already;
      }
      const { numKvHeads } = layerShape(config, Number(l.prefix.split(".").pop()));
      if (l.heads > 0 && numKvHeads > 0) {
        // Heads go by whole key/value groups, so GQA's groups stay equal and k/v rows go too.
        const mu = gateParams.get(headGate(l.prefix))!.data;
        const rep = l.heads / numKvHeads;
        const groupScore = (g: number) => Math.max(...mu.subarray(g * rep, (g + 1) * rep));
        const already = [...Array(numKvHeads).keys()].filter((g) => groupScore(g) <= -0.5).length;
        const count = Math.max(already, Math.round(targetSparsity * numKvHeads));
        const n = closeLowest(numKvHeads, count, groupScore, (g) => {
          for (let h = g * rep; h < (g + 1) * rep; h++) mu[h] = Math.min(mu[h]!, -0.5);
        });
        closed.heads += (n - already) * rep;
      }
    }
    return closed;
  };

  let total = model.parameterCount;
  for (const t of trainable.values()) total += t.data.length;
  return {
    name: opts.loraRank > 0 ? "finegates-lora" : "finegates",
    config: model.config,
    trainable,
    params: (graph: Graph, mode = "eval") => new GatedParams(lora ? lora.params(graph) : frozen(graph), layout, { sigma, lambda, targetSparsity }, mode === "train"),
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
    lrScale: (name) => (name.startsWith("finegates.") ? opts.gateLrScale : 1),
    save: (outDir: string) => {
      const { model: pruned, report } = prune();
      pruned.save(outDir);
      const runConfig = {
        format: "slimtune-finegates" as const,
        version: 2 as const,
        base_model: model.sourceDir ? path.resolve(model.sourceDir) : null,
        target_sparsity: targetSparsity,
        lambda,
        sigma,
        lora_rank: opts.loraRank,
        lora_alpha: opts.loraAlpha,
        lora_targets: [...opts.targets],
        residual_gates: opts.residualGates,
        hardened: trained !== null,
      };
      saveFineGatesRun(outDir, runConfig, trained ?? trainable, { ...report });
    },
    finalize: () => {
      if (!opts.hardenToTarget) return;
      trained = snapshot();
      hardenGates();
    },
    totalParameters: total,
    gates,
    prune,
    hardenGates,
  };
}

/** Copies a run's gate μ into `gates`, checking that the run was made on a model of this layout. */
function restoreGates(gates: Map<string, HostParam>, tensors: ReadonlyMap<string, HostParam>, source: string): void {
  for (const name of tensors.keys()) {
    if (name.startsWith("finegates.") && !gates.has(name)) {
      throw new SlimtuneError("E_SHAPE", `gate "${name}" has no place in this model; the run was made on another base — pass the model it was trained on`, source);
    }
  }
  for (const [name, p] of gates) {
    const t = tensors.get(name);
    if (!t) throw new SlimtuneError("E_SAFETENSORS", `missing gate "${name}"; re-run finetune --method finegates`, source);
    if (t.data.length !== p.data.length) {
      throw new SlimtuneError("E_SHAPE", `gate "${name}" has ${t.data.length} values, this model needs ${p.data.length}; pass the model the run was trained on`, source);
    }
    p.data.set(t.data);
  }
}

/**
 * A saved FineGates run on its (unpruned) base: the gates as trained, before hardening. `eval` scores
 * it as the gated model; `prune --from-gates` hardens and removes. `targetSparsity` overrides the
 * run's target for hardening.
 */
export function fineGatesFromRun(model: LlamaModel, run: FineGatesRun, overrides: { targetSparsity?: number } = {}): FineGatesMethod {
  const c = run.config;
  return fineGatesMethod(
    model,
    {
      ...defaultFineGatesOptions,
      targetSparsity: overrides.targetSparsity ?? c.target_sparsity,
      lambda: c.lambda,
      sigma: c.sigma,
      loraRank: c.lora_rank,
      loraAlpha: c.lora_alpha,
      targets: c.lora_targets,
      residualGates: c.residual_gates,
      hardenToTarget: c.hardened,
      seed: 0,
    },
    { tensors: run.tensors, source: path.join(run.dir, "finegates.safetensors") },
  );
}

export const fineGatesDefinition = defineMethod({
  name: "finegates",
  defaultLr: 1e-3,
  summary: "stochastic row/column gates (+ LoRA with --lora-rank) that adapt the model; the gated-off structure is removed at the end",
  needs: "float",
  flags: fineGatesFlags,
  create: (base, o, ctx) =>
    ctx.adapter ? fineGatesFromRun(floatBase(base, "finegates"), loadFineGatesRun(ctx.adapter)) : fineGatesMethod(floatBase(base, "finegates"), { ...o, seed: ctx.seed }),
  // A run folder as an "adapter" on the unpruned base: the gated model before hardening.
  adapter: {
    detect: isFineGatesRun,
    load: (base, dir) => fineGatesFromRun(floatBase(base, "finegates"), loadFineGatesRun(dir)),
  },
});
