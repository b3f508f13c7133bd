// The token embedding and LM head quantized as tables, so a 4-bit model is a ~4-bit file (issue 17):
// round-to-nearest in groups of 32 along the hidden size, symmetric (zero 2^(bits−1)), the grid both
// GatherBlockQuantized and MatMulNBits read without zero points (models/parts/quantized-embedding.ts).
// A tied model gets one table serving both.

import { type LlamaConfig, isGpt2 } from "../arch/llama/config.js";
import { GPT2_WTE } from "../arch/gpt2/names.js";
import type { HostParam } from "../arch/params.js";
import { dequantizeRtn, quantizeRtn } from "./kinds/rtn.js";
import type { QuantizedTables, QuantSpec, RtnLinear } from "./types.js";

export const TABLE_GROUP = 32;

/** The token embedding tensor a table replaces (GPT-2 names it wte). */
export const embeddingName = (config: LlamaConfig): string => (isGpt2(config) ? GPT2_WTE : "model.embed_tokens.weight");

export const tableSpec = (bits: 4 | 8): QuantSpec => ({ scheme: "rtn", bits, groupSize: TABLE_GROUP, symmetric: true });

/** True when `config`'s hidden size splits into whole groups of 32, the tables' only layout. */
export const hasTableLayout = (config: LlamaConfig): boolean => config.hiddenSize % TABLE_GROUP === 0;

/** Tables at `bits` from the float tensors; null when the hidden size has no whole groups of 32. */
export function quantizeTables(config: LlamaConfig, weights: ReadonlyMap<string, HostParam>, bits: 4 | 8): QuantizedTables | null {
  if (!hasTableLayout(config)) return null;
  const table = (name: string) => {
    const w = weights.get(name);
    return w ? quantizeRtn(w.data, w.shape[0]!, w.shape[1]!, tableSpec(bits)) : undefined;
  };
  const embedding = table(embeddingName(config));
  return { embedding, lmHead: config.tieWordEmbeddings ? embedding : table("lm_head.weight") };
}

/**
 * The table of an [n, k] float matrix read `blockRows` rows at a time from `readRows(row0, rows)`:
 * the same codes, scales and zeros as quantizeRtn on the whole matrix (RTN treats every row on its
 * own), while only one block of floats is alive at once — a loader can build the 4-bit table of a
 * 151,936 × 896 embedding without its 520 MiB float32 copy (formats/quantized/streamed-tables.ts).
 */
export function quantizeTableRows(readRows: (row0: number, rows: number) => Float32Array, n: number, k: number, bits: 4 | 8, blockRows = Math.max(1, Math.floor(TABLE_BLOCK_VALUES / k))): RtnLinear {
  const spec = tableSpec(bits);
  const groups = k / TABLE_GROUP;
  const codes = new Uint8Array(n * k);
  const scales = new Float32Array(n * groups);
  const zeros = new Uint8Array(n * groups);
  for (let row0 = 0; row0 < n; row0 += blockRows) {
    const rows = Math.min(blockRows, n - row0);
    const block = quantizeRtn(readRows(row0, rows), rows, k, spec, { layer: `rows ${row0}…${row0 + rows - 1} of the embedding/LM head` });
    codes.set(block.codes, row0 * k);
    scales.set(block.scales, row0 * groups);
    zeros.set(block.zeros, row0 * groups);
  }
  return { kind: "rtn", spec: { ...spec }, outFeatures: n, inFeatures: k, groupSize: TABLE_GROUP, codes, scales, zeros, bias: null };
}

/** Floats per block of quantizeTableRows: 16 MiB of float32, small beside any table worth streaming. */
const TABLE_BLOCK_VALUES = 4 << 20;

/** The float values the tables hold, by the tensor names they replace. */
export function dequantizedTables(config: LlamaConfig, tables: QuantizedTables): Map<string, HostParam> {
  const out = new Map<string, HostParam>();
  const put = (name: string, q: QuantizedTables["embedding"]) => {
    if (q) out.set(name, { data: dequantizeRtn(q), shape: [q.outFeatures, q.inFeatures] });
  };
  put(embeddingName(config), tables.embedding);
  if (!config.tieWordEmbeddings) put("lm_head.weight", tables.lmHead);
  return out;
}
