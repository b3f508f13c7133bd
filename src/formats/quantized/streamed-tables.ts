// A quantized folder's embedding/LM head tables built straight from its safetensors file, a block
// of rows at a time. Quantizing the loaded float tensors (eval/head-tables.ts) held the whole
// float32 embedding beside its table codes and every layer's codes: at the Qwen2.5-0.5B shape the
// 151,936 × 896 embedding alone is 520 MiB of a 1,161 MiB loading peak, and at Llama-3.2-1B's
// 128,256 × 2048 it is 1 GiB. Read this way, one 16 MiB block of floats exists at a time, and the
// tables are bit for bit those of quantizeTables on the loaded tensors (RTN quantizes rows alone).

import type { LlamaConfig } from "../../arch/llama/config.js";
import { llamaParamShapes } from "../../arch/llama/shapes.js";
import { SlimtuneError } from "../../core/errors.js";
import { embeddingName, quantizeTableRows } from "../../quant/tables.js";
import type { QuantizedTables } from "../../quant/types.js";
import type { FolderTensors } from "../folder-tensors.js";

/** The dense tensors the tables replace: the embedding, and lm_head when it is not tied to it. */
export function tableTensorNames(config: LlamaConfig): Set<string> {
  return new Set(config.tieWordEmbeddings ? [embeddingName(config)] : [embeddingName(config), "lm_head.weight"]);
}

/**
 * The tables at `bits` read from `tensors` block by block (`blockRows` rows each, default 16 MiB of
 * floats); a tied model gets one table serving both. Inf or NaN in a block is refused as loadBase
 * refuses it in a loaded tensor, naming the tensor and the index.
 */
export function streamedTables(tensors: FolderTensors, config: LlamaConfig, bits: 4 | 8, blockRows?: number): QuantizedTables {
  const shapes = llamaParamShapes(config);
  const table = (name: string) => {
    const shape = shapes.get(name)!;
    const [n, k] = shape as [number, number];
    const readRows = (row0: number, rows: number) => {
      const block = tensors.float32Rows(name, shape, row0, rows, "the embedding/LM head the table is built from");
      refuseNonFinite(block, name, row0 * k, tensors.fileOf(name));
      return block;
    };
    return quantizeTableRows(readRows, n, k, bits, blockRows);
  };
  const embedding = table(embeddingName(config));
  return { embedding, lmHead: config.tieWordEmbeddings ? embedding : table("lm_head.weight") };
}

function refuseNonFinite(block: Float32Array, name: string, offset: number, file: string): void {
  for (let i = 0; i < block.length; i++) {
    const v = block[i]!;
    if (v - v === 0) continue; // NaN exactly for Inf and NaN
    throw new SlimtuneError(
      "E_SAFETENSORS",
      `tensor ${name} holds ${v} at index ${offset + i}; the weights must be finite — the file is corrupt or was written by a diverged training run (re-create it, or resume the run from an earlier checkpoint with a lower --lr)`,
      file,
    );
  }
}
