// One decoder block as a graph of its own, run over hidden states held on the host: the unit of
// block-by-block work — GPTQ's calibration capture (the Gram matrix XᵀX of a linear layer's input,
// computed in the graph so activations never leave ORT) and ReALLM's block-wise training (the
// block's output against a target). Hidden states flow block to block as [S·T, C] float32 arrays.

import { ropeInvFreq } from "../../arch/llama/rope.js";
import { type LlamaConfig, isGpt2 } from "../../arch/llama/config.js";
import { gpt2LayerPrefix } from "../../arch/gpt2/names.js";
import { linearLayers } from "../../arch/llama/shapes.js";
import { embeddingScale } from "../../arch/llama/gemma3.js";
import type { HostParam, ParamSource } from "../../arch/params.js";
import { type CompiledGraph, type Graph, type GraphOutputs, type HostTensor, type Value, gemm, grad, mul, reduceMean, ropeTables, sub } from "../../engine/index.js";
import { llamaBlock } from "./graph.js";
import { gradName } from "./lm-graphs.js";

export const HIDDEN_IN = "hidden_in";
export const HIDDEN_TARGET = "hidden_target";
export const HIDDEN_OUT = "hidden_out";
export const gramName = (path: string) => `gram:${path}`;

/**
 * Layer `layer`'s linear layers grouped by the input they read, in the order the block computes
 * them: [q, k, v], [o], [gate, up], [down] (fewer for a pruned layer). GPTQ's "true sequential"
 * quantizes group by group, each from inputs produced by the groups already quantized.
 */
export function inputGroups(config: LlamaConfig, layer: number): string[][] {
  const groups: string[][] = [];
  let last = "";
  for (const l of linearLayers(config).filter((x) => x.layer === layer)) {
    // gpt2's four layers each read their own input (c_attn, attn.c_proj, c_fc, mlp.c_proj): one group each.
    const input = l.module === "q_proj" || l.module === "k_proj" || l.module === "v_proj" ? "attn_in" : l.module === "gate_proj" || l.module === "up_proj" ? "mlp_in" : l.path;
    if (input === last) groups[groups.length - 1]!.push(l.path);
    else groups.push([l.path]);
    last = input;
  }
  return groups;
}

/** Every parameter name of decoder layer `layer` (norms, linear weights and biases). */
export function blockParamNames(weights: ReadonlyMap<string, HostParam>, layer: number, config: Pick<LlamaConfig, "modelType">): string[] {
  const prefix = `${isGpt2(config) ? gpt2LayerPrefix(layer) : `model.layers.${layer}`}.`;
  return [...weights.keys()].filter((n) => n.startsWith(prefix));
}

/** Records the input of each linear layer the block calls, so the graph can output its Gram matrix. */
class CapturingParams implements ParamSource {
  readonly graph: Graph;
  readonly inputs = new Map<string, Value>();

  constructor(private readonly inner: ParamSource) {
    this.graph = inner.graph;
  }

  tensor(name: string): Value {
    return this.inner.tensor(name);
  }

  linear(path: string, x: Value): Value {
    this.inputs.set(path, x);
    return this.inner.linear(path, x);
  }

  penalty(): Value | null {
    return this.inner.penalty?.() ?? null;
  }
}

function blockBody(config: LlamaConfig, layer: number, params: ParamSource, batch: number, seq: number): { x: Value; y: Value; capture: CapturingParams } {
  const g = params.graph;
  const capture = new CapturingParams(params);
  const x = g.input(HIDDEN_IN, [batch * seq, config.hiddenSize]);
  // GPT-2 has no RoPE: identity tables (cos 1, sin 0) leave q and k exactly as they are.
  const tables = isGpt2(config)
    ? { cos: new Float32Array(seq * config.headDim).fill(1), sin: new Float32Array(seq * config.headDim) }
    : ropeTables(seq, config.headDim, config.ropeTheta, ropeInvFreq(config));
  const rot = { cos: g.constant(tables.cos, [seq, config.headDim]), sin: g.constant(tables.sin, [seq, config.headDim]) };
  const y = llamaBlock(config, capture, x, layer, { batch, seq, rot });
  return { x, y, capture };
}

/**
 * hidden_in [B·T, C] → hidden_out [B·T, C], plus "gram:<path>" = XᵀX [K, K] of the input of each
 * layer in `grams` (layers sharing an input share the product; each gets its own output name).
 * `hidden: false` leaves hidden_out out, so the graph stops at the last captured input (ONNX export
 * keeps only the nodes the outputs need): capturing q/k/v's input then costs one RMSNorm.
 */
export function buildBlockGraph(
  config: LlamaConfig,
  layer: number,
  params: ParamSource,
  batch: number,
  seq: number,
  grams: readonly string[] = [],
  opts: { hidden?: boolean } = {},
): { graph: Graph; outputs: GraphOutputs } {
  const { y, capture } = blockBody(config, layer, params, batch, seq);
  const outputs: GraphOutputs = opts.hidden === false ? {} : { [HIDDEN_OUT]: y };
  const done = new Map<Value, Value>();
  for (const path of grams) {
    const x = capture.inputs.get(path);
    if (!x) throw new Error(`block ${layer} has no linear layer "${path}"`);
    let gram = done.get(x);
    if (!gram) {
      gram = gemm(x, x, { transA: true });
      done.set(x, gram);
    }
    outputs[gramName(path)] = gram;
  }
  return { graph: params.graph, outputs };
}

/**
 * Block-wise training: "loss" = mean over elements of (block(hidden_in) − hidden_target)², and
 * "grad:<name>" for each graph input named in `wrt`.
 */
export function buildBlockLossGraph(config: LlamaConfig, layer: number, params: ParamSource, batch: number, seq: number, wrt: readonly string[]): { graph: Graph; outputs: GraphOutputs } {
  const g = params.graph;
  const { y } = blockBody(config, layer, params, batch, seq);
  const target = g.input(HIDDEN_TARGET, [batch * seq, config.hiddenSize]);
  const d = sub(y, target);
  const loss = reduceMean(mul(d, d), [0, 1]);
  const byName = new Map(g.inputs.map((v) => [v.name!, v]));
  const outputs: GraphOutputs = { loss };
  grad(
    loss,
    wrt.map((n) => {
      const v = byName.get(n);
      if (!v) throw new Error(`"${n}" is not an input of block ${layer}'s graph`);
      return v;
    }),
  ).forEach((gv, i) => (outputs[gradName(wrt[i]!)] = gv));
  return { graph: g, outputs };
}

/** Host hidden states [rows, C] split into runs of `batch` sequences of `seq` tokens. */
export interface HiddenChunks {
  rows: number;
  hidden: number;
  seq: number;
  batch: number;
}

/**
 * Runs `compiled` over every chunk of `x` ([S·T, C], S sequences of T tokens), `batch` sequences at
 * a time (the last chunk may be smaller: `graphFor(b)` returns the graph for b sequences), handing
 * each chunk's outputs to `onChunk` with the chunk's first row.
 */
export async function forEachChunk(
  x: Float32Array,
  shape: HiddenChunks,
  graphFor: (batch: number) => Promise<CompiledGraph>,
  feeds: Record<string, HostTensor>,
  onChunk: (out: Record<string, HostTensor>, firstRow: number, rows: number) => void,
  extra?: (firstRow: number, rows: number) => Record<string, HostTensor>,
): Promise<void> {
  const { rows, hidden: C, seq: T, batch } = shape;
  const sequences = rows / T;
  for (let s = 0; s < sequences; s += batch) {
    const b = Math.min(batch, sequences - s);
    const first = s * T;
    const n = b * T;
    const compiled = await graphFor(b);
    const out = await compiled.run({ ...feeds, ...(extra?.(first, n) ?? {}), [HIDDEN_IN]: { data: x.slice(first * C, (first + n) * C), shape: [n, C] } });
    onChunk(out, first, n);
  }
}

/** Host embedding lookup: ids [S·T] → hidden states [S·T, C], scaled as the config's graph scales them (Gemma 3: × √C). */
export function embedRows(embed: HostParam, ids: Int32Array, config: Pick<LlamaConfig, "gemma3" | "hiddenSize">): Float32Array {
  const C = embed.shape[1]!;
  const out = new Float32Array(ids.length * C);
  for (let i = 0; i < ids.length; i++) out.set(embed.data.subarray(ids[i]! * C, (ids[i]! + 1) * C), i * C);
  const scale = embeddingScale(config);
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i]! *= scale;
  return out;
}
