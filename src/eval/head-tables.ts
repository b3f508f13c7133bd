// The token embedding and LM head of a quantized model, quantized at load for generation. A decode
// step reads every weight once; at the SmolLM2-135M shape the tied 49,152 × 576 table in float32
// is 113 MB per token against ~53 MB for all the 4-bit layers, and was a third of the step's
// kernel time (bench/decode-profile.mjs). llama.cpp's files quantize it too (slimtune's uniform
// Q4_0 export writes token_embd as Q4_0). Round-to-nearest, symmetric, groups of 32, the grid
// GatherBlockQuantized and MatMulNBits share (quant/tables.ts), as the ONNX export does.

import { type LoadedBase, loadBase } from "../models/load.js";
import { embeddingName, quantizeTables } from "../quant/tables.js";

/**
 * "float" keeps the float tensors. 8 is the default: on ref-llama-5m at 4 bits its KL to the float
 * head is 4e-5 nats, while a 4-bit head's (1.1e-2) is twice what quantizing every layer to 4 bits
 * costs (test/eval/head-tables.test.ts); 4 matches the token_embd of a uniform Q4_0 GGUF file.
 */
export type HeadBits = 4 | 8 | "float";

export interface HeadChoice {
  base: LoadedBase;
  /** What the head is, for reports: e.g. "4-bit table (RTN, groups of 32, quantized at load)". */
  head: string;
  /** Bits of the table, or null when the head stays as it was. */
  bits: 4 | 8 | null;
}

/**
 * `base` with its embedding and LM head as quantized tables when it is a quantized model without
 * them; the float tensors the tables replace leave `dense` so no float copy stays in memory. A
 * float model, a model that already has tables, and `bits` "float" come back as they are.
 */
export function withQuantizedHead(base: LoadedBase, bits: HeadBits = 8): HeadChoice {
  if (base.kind === "float") return { base, head: "float32", bits: null };
  const qm = base.model;
  if (qm.tables) return { base, head: "quantized table (stored in the folder)", bits: null };
  if (bits === "float") return { base, head: "float32 (kept with --head-bits float)", bits: null };
  const tables = quantizeTables(qm.config, qm.dense, bits);
  if (!tables?.embedding && !tables?.lmHead) return { base, head: `float32 (the hidden size ${qm.config.hiddenSize} has no whole groups of 32)`, bits: null };
  const dense = new Map(qm.dense);
  if (tables.embedding) dense.delete(embeddingName(qm.config));
  if (tables.lmHead && !qm.config.tieWordEmbeddings) dense.delete("lm_head.weight");
  return { base: { kind: "quantized", model: { ...qm, dense, tables } }, head: tableHead(bits), bits };
}

/**
 * loadBase(dir) then withQuantizedHead, without the float embedding/LM head ever in memory: a
 * quantized folder's tables are built from its file a block of rows at a time
 * (formats/quantized/streamed-tables.ts), bit for bit the tables withQuantizedHead makes. At the
 * Qwen2.5-0.5B shape that float copy was 520 MiB of the 1,161 MiB loading peak (docs/benchmarks-history.md §2).
 */
export function loadWithQuantizedHead(dir: string, bits: HeadBits = 8): HeadChoice {
  if (bits === "float") return withQuantizedHead(loadBase(dir), bits);
  const base = loadBase(dir, { headTables: bits });
  if (base.kind === "quantized" && base.model.tables) return { base, head: tableHead(bits), bits };
  return withQuantizedHead(base, bits);
}

const tableHead = (bits: 4 | 8) => `${bits}-bit table (RTN, groups of 32, quantized at load)`;
