// ReALLM's block-wise phase: before end-to-end training, each decoder block's low-rank factors L₁, L₂
// are fitted so that the compressed block, fed the hidden states of the compressed blocks before it,
// reproduces the float block's output on the float model's own hidden states (mean squared error).
// Block by block, in order, like GPTQ's calibration (models/llama/block.ts); only L₁, L₂ move.

import type { HostParam } from "../../arch/params.js";
import { isGpt2 } from "../../arch/llama/config.js";
import { Rng } from "../../core/rng.js";
import { SlimtuneError } from "../../core/errors.js";
import { calibrationWindows } from "../../data/calibration.js";
import { CompiledGraph, Graph, type GraphOutputs, type HostTensor } from "../../engine/index.js";
import { HIDDEN_IN, HIDDEN_OUT, HIDDEN_TARGET, buildBlockGraph, buildBlockLossGraph, embedRows, forEachChunk } from "../../models/llama/block.js";
import { gradName } from "../../models/llama/lm-graphs.js";
import type { LlamaModel } from "../../models/llama/model.js";
import { DenseParams } from "../../models/llama/params.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import type { QuantizedModel } from "../../quant/types.js";
import type { PrepareContext } from "../method.js";

export interface BlockwiseOptions {
  reference: LlamaModel;
  /** Optimizer steps per block. */
  steps: number;
  lr: number;
  /** Windows per step. */
  batch: number;
  /** Windows drawn from the training text. */
  samples: number;
}

export interface BlockwiseReport {
  layer: number;
  /** Mean squared error of the block's output over every window, before and after. */
  mseBefore: number;
  mseAfter: number;
  seconds: number;
}

/** Fits L₁, L₂ (the `trainable` arrays, updated in place) block by block. */
export async function blockwiseFit(qm: QuantizedModel, trainable: ReadonlyMap<string, HostParam>, ctx: PrepareContext, opts: BlockwiseOptions): Promise<BlockwiseReport[]> {
  const { config } = qm;
  if (isGpt2(config)) throw new SlimtuneError("E_ARG", "ReALLM's block-wise fit (--block-steps) does not support gpt2 yet; run --method reallm with --block-steps 0");
  const ref = opts.reference;
  if (ref.config.hiddenSize !== config.hiddenSize || ref.config.numLayers !== config.numLayers || ref.config.vocabSize !== config.vocabSize) {
    throw new SlimtuneError("E_CONFIG", `--reference has hidden ${ref.config.hiddenSize}, ${ref.config.numLayers} layers and vocabulary ${ref.config.vocabSize}; the ReALLM model has ${config.hiddenSize}, ${config.numLayers} and ${config.vocabSize} — pass the float model it was quantized from`, ref.sourceDir ?? undefined);
  }
  const T = ctx.seq;
  const ids = calibrationWindows(ctx.tokens, { samples: opts.samples, seq: T, seed: ctx.seed });
  const C = config.hiddenSize;
  const rows = ids.length;
  const chunks = { rows, hidden: C, seq: T, batch: Math.max(1, Math.floor(2048 / T)) };
  let xf = embedRows(ref.weights.get("model.embed_tokens.weight")!, ids, config);
  let xq = embedRows(qm.dense.get("model.embed_tokens.weight")!, ids, config);
  const rng = new Rng(ctx.seed + 17);
  const sessionOpts = { threads: ctx.threads, memoryArena: false };
  const feedsOf = (names: string[]) => Object.fromEntries(names.map((n) => [n, trainable.get(n)!])) as Record<string, HostTensor>;
  const reports: BlockwiseReport[] = [];
  const run = async (build: (b: number) => { graph: Graph; outputs: GraphOutputs }, x: Float32Array, feeds: Record<string, HostTensor>, extra?: (first: number, n: number) => Record<string, HostTensor>) => {
    const compiled = new Map<number, Promise<CompiledGraph>>();
    const out = new Float32Array(x.length);
    let loss = 0;
    try {
      await forEachChunk(
        x,
        chunks,
        (b) => {
          let c = compiled.get(b);
          if (!c) {
            const { graph, outputs } = build(b);
            c = CompiledGraph.compile(graph, outputs, sessionOpts);
            compiled.set(b, c);
          }
          return c;
        },
        feeds,
        (o, first, n) => {
          if (o[HIDDEN_OUT]) out.set(o[HIDDEN_OUT].data as Float32Array, first * C);
          if (o.loss) loss += (o.loss.data[0] as number) * n;
        },
        extra,
      );
    } finally {
      for (const c of compiled.values()) await (await c).release();
    }
    return { out, mse: loss / rows };
  };

  for (let i = 0; i < config.numLayers; i++) {
    const started = performance.now();
    const yf = (await run((b) => buildBlockGraph(ref.config, i, new DenseParams(new Graph(), ref.weights, new Set()), b, T), xf, {})).out;
    const names = [...trainable.keys()].filter((n) => n.startsWith(`model.layers.${i}.`));
    const lossGraph = (b: number) => buildBlockLossGraph(config, i, new QuantizedParams(new Graph(), qm, { lowRankInputs: true }), b, T, []);
    const target = (first: number, n: number) => ({ [HIDDEN_TARGET]: { data: yf.slice(first * C, (first + n) * C), shape: [n, C] } });
    const mseBefore = (await run(lossGraph, xq, feedsOf(names), target)).mse;
    if (names.length > 0 && opts.steps > 0) {
      const b = Math.min(opts.batch, rows / T);
      const { graph, outputs } = buildBlockLossGraph(config, i, new QuantizedParams(new Graph(), qm, { lowRankInputs: true }), b, T, names);
      const step = await CompiledGraph.compile(graph, outputs, sessionOpts);
      const optimizer = ctx.optimizer(new Map(names.map((n) => [n, trainable.get(n)!.data])));
      const xb = new Float32Array(b * T * C);
      const yb = new Float32Array(b * T * C);
      try {
        for (let s = 0; s < opts.steps; s++) {
          for (let j = 0; j < b; j++) {
            const w = rng.int(rows / T);
            xb.set(xq.subarray(w * T * C, (w + 1) * T * C), j * T * C);
            yb.set(yf.subarray(w * T * C, (w + 1) * T * C), j * T * C);
          }
          const out = await step.run({ ...feedsOf(names), [HIDDEN_IN]: { data: xb, shape: [b * T, C] }, [HIDDEN_TARGET]: { data: yb, shape: [b * T, C] } });
          optimizer.step(new Map(names.map((n) => [n, out[gradName(n)]!.data as Float32Array])), opts.lr);
        }
      } finally {
        await step.release();
      }
    }
    const after = await run(lossGraph, xq, feedsOf(names), target);
    // The tuned block's outputs feed the next one.
    const next = (await run((bb) => buildBlockGraph(config, i, new QuantizedParams(new Graph(), qm, { lowRankInputs: true }), bb, T), xq, feedsOf(names))).out;
    xq = next;
    xf = yf;
    reports.push({ layer: i, mseBefore, mseAfter: after.mse, seconds: (performance.now() - started) / 1000 });
    ctx.log(`block ${i}: output MSE ${mseBefore.toExponential(3)} → ${after.mse.toExponential(3)} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  }
  return reports;
}
