// Weights of a quantized model for a graph: float tensors (embeddings, norms, float linears) as
// constants and every quantized linear layer through its kind's graph part; scales either frozen
// constants or graph inputs (PEQA trains them, task switching swaps them).

import type { ParamSource } from "../../arch/params.js";
import { type Graph, type HostTensor, type Value, add, gemm } from "../../engine/index.js";
import { dequantize } from "../../quant/kinds/index.js";
import { scaleName, scaleShape } from "../../quant/scales.js";
import type { QuantizedLinear, QuantizedModel, RtnLinear } from "../../quant/types.js";
import { DenseParams } from "../llama/params.js";
import { canUseMatMulNBits } from "./matmul-nbits.js";
import { quantizedTable } from "./quantized-embedding.js";
import { quantizedLinear } from "./quantized-linear.js";

export interface QuantizedParamsOptions {
  /** Scales become graph inputs named `<path>.scales`, fed at run time (training, task switching). */
  scaleInputs?: boolean;
  /** Frozen inference through MatMulNBits where the layer allows it (ignored with scaleInputs). */
  fused?: boolean;
  /** MatMulNBits' accuracy_level (4 for generation speed; default 0, exact). */
  accuracyLevel?: 0 | 4;
  /**
   * Layers MatMulNBits cannot take (NF4, odd group sizes) become float constants dequantized once
   * on the host: one-token generation runs cannot afford dequantizing in the graph every step.
   */
  dequantizeUnfused?: boolean;
  /** ReALLM layers' L₁, L₂ become graph inputs named by lowRankNames (they train). */
  lowRankInputs?: boolean;
  /** How ReALLM's vector-quantized part enters the graph. */
  vq?: "dequantized" | "gather" | "compact";
  /** MatMulNBits layers of 3 bits store their codes at 3 bits (exports). */
  packThreeBit?: boolean;
  /**
   * Token embedding and LM head as quantized tables (models/parts/quantized-embedding.ts) instead of
   * the float tensors; a tied model passes the same layer as both, and the graph holds it once.
   */
  tables?: { embedding?: RtnLinear; lmHead?: RtnLinear };
}

/** Graph input names of a ReALLM layer's low-rank factors (also their tensor names in the folder). */
export const lowRankNames = (path: string) => ({ l1: `${path}.lowrank_l1`, l2: `${path}.lowrank_l2` });

export class QuantizedParams implements ParamSource {
  private readonly dense: DenseParams;
  /** Each layer built once, applied as often as the graph calls it (a checkpointed block twice). */
  private readonly layers = new Map<string, (x: Value) => Value>();
  readonly embed?: (ids: Value) => Value;
  readonly head?: (x: Value) => Value;

  constructor(
    readonly graph: Graph,
    private readonly qm: QuantizedModel,
    private readonly opts: QuantizedParamsOptions = {},
  ) {
    this.dense = new DenseParams(graph, qm.dense, new Set());
    const { embedding, lmHead } = opts.tables ?? {};
    const level = opts.accuracyLevel ?? 0;
    const table = embedding ? quantizedTable(graph, embedding, "model.embed_tokens", level) : undefined;
    if (table) this.embed = (ids) => table.embed(ids);
    if (lmHead) {
      const head = lmHead === embedding && table ? table : quantizedTable(graph, lmHead, "lm_head", level);
      this.head = (x) => head.head(x);
    }
  }

  /**
   * Whether linear(path, x) takes x of any rank [..., K]: a quantized RTN layer run by MatMulNBits
   * (not act-order, whose column permutation works on [M, K]); float and dequantized layers are Gemms of [M, K].
   */
  takesRowsOfAnyRank(path: string): boolean {
    const q = this.qm.linears.get(path);
    return q?.kind === "rtn" && !q.groupIndex && this.opts.fused === true && !this.opts.scaleInputs && canUseMatMulNBits(q);
  }

  /** Whether the scales are graph inputs (PEQA training and scoring, task switching). */
  get takesScaleInputs(): boolean {
    return this.opts.scaleInputs === true;
  }

  /**
   * The same model in a new graph with `scales` (the feeds of the scale inputs, by scaleName)
   * folded into its layers as constants, for generation: MatMulNBits at `accuracyLevel` where the
   * layer allows it, other grid layers dequantized once on the host. Exact: MatMulNBits computes
   * (code − zero) · scale per block, and a per-channel scale replicated over a row's blocks is that
   * channel's scale; the scale-input graph instead dequantized every layer on every run.
   */
  folded(graph: Graph, scales: Readonly<Record<string, HostTensor>>, accuracyLevel: 0 | 4 = 4): QuantizedParams {
    const linears = new Map([...this.qm.linears].map(([path, q]) => {
      const tuned = q.kind === "reallm" ? undefined : scales[scaleName(path)];
      return [path, tuned ? { ...q, scales: Float32Array.from(tuned.data as Float32Array) } : q] as const;
    }));
    const { embedding, lmHead } = this.opts.tables ?? {};
    const tables = embedding || lmHead ? { tables: this.opts.tables! } : {};
    return new QuantizedParams(graph, { ...this.qm, linears }, { fused: true, accuracyLevel, dequantizeUnfused: true, ...tables });
  }

  /**
   * Frees the host copies of the integer codes the graph now holds in its own constants (MatMulNBits'
   * packed blocks, the tables', or a dequantized float weight): every built RTN/NF4 layer's and the
   * embedding/LM head tables', one byte per code (106 MB + 28 MB at the SmolLM2-135M shape). For a
   * caller that hands the model over to one session (`slimtune generate`, `chat`): the model keeps
   * its other fields, but can no longer build a graph or be saved. Returns the bytes released.
   */
  releaseCodes(): number {
    let bytes = 0;
    for (const path of this.layers.keys()) bytes += this.releaseLayerCodes(path);
    for (const table of [this.opts.tables?.embedding, this.opts.tables?.lmHead]) {
      if (!table || table.codes.length === 0 || (!this.embed && !this.head)) continue;
      bytes += table.codes.byteLength;
      table.codes = new Uint8Array(0);
    }
    return bytes;
  }

  /**
   * releaseCodes now, and from now on each layer's codes as soon as the layer is built: the graph
   * building that follows never holds one layer's codes at one byte each beside every other layer's
   * packed blocks. At the Llama-3.2-1B shape, releasing them all only after the build let (by size) 1,178 MiB
   * of codes and 589 MiB of packed blocks coexist (docs/benchmarks.md, "session 28: loading").
   */
  releaseCodesAsBuilt(): number {
    this.releaseOnBuild = true;
    return this.releaseCodes();
  }

  private releaseOnBuild = false;

  private releaseLayerCodes(path: string): number {
    const q = this.qm.linears.get(path);
    if (!q || q.kind === "reallm" || q.codes.length === 0) return 0;
    const bytes = q.codes.byteLength;
    q.codes = new Uint8Array(0);
    return bytes;
  }

  tensor(name: string): Value {
    if (!this.dense.has(name)) throw new Error(`quantized model has no float tensor "${name}"`);
    return this.dense.tensor(name);
  }

  linear(path: string, x: Value): Value {
    const q = this.qm.linears.get(path);
    // A layer the quantization plan left in float is an ordinary dense linear.
    if (!q) return this.dense.linear(path, x);
    let layer = this.layers.get(path);
    if (!layer) {
      layer = this.build(path, q);
      this.layers.set(path, layer);
      if (this.releaseOnBuild) this.releaseLayerCodes(path);
    }
    return layer(x);
  }

  private build(path: string, q: QuantizedLinear): (x: Value) => Value {
    if (q.kind === "reallm") {
      const names = lowRankNames(path);
      const r = q.spec.rank;
      const lowRank = this.opts.lowRankInputs && r > 0 ? { l1: this.graph.input(names.l1, [q.outFeatures, r]), l2: this.graph.input(names.l2, [r, q.inFeatures]) } : undefined;
      return quantizedLinear(this.graph, q, path, { lowRank, vq: this.opts.vq });
    }
    const scales = this.opts.scaleInputs ? this.graph.input(scaleName(path), scaleShape(q)) : undefined;
    const fused = this.opts.fused && !this.opts.scaleInputs;
    if (fused && this.opts.dequantizeUnfused && !(q.kind === "rtn" && canUseMatMulNBits(q))) {
      const w = this.graph.constant(dequantize(q), [q.outFeatures, q.inFeatures], "float32", `${path}.dequantized`);
      const b = q.bias ? this.graph.constant(q.bias, [q.outFeatures], "float32", `${path}.bias`) : null;
      return (x) => (b ? add(gemm(x, w, { transB: true }), b) : gemm(x, w, { transB: true }));
    }
    return quantizedLinear(this.graph, q, path, { scales, fused, ...(this.opts.accuracyLevel ? { accuracyLevel: this.opts.accuracyLevel } : {}), ...(this.opts.packThreeBit ? { packThreeBit: true } : {}) });
  }
}
