// What one quantized layer occupies on disk, part by part, so size reports count every layer at
// its own bits (a mixed-precision model is the sum of its layers).

export interface LayerStorage {
  /** Codes, in bits (N·K·b for grid kinds). */
  codeBits: number;
  /** Scales (or absmax) as stored. */
  scaleBytes: number;
  /** Zero points, in bits; 0 where the kind has none. */
  zeroBits: number;
  /** A per-input-row group index (GPTQ's g_idx); 0 where the format has none. */
  groupIndexBytes: number;
  /** Codebooks stored with the layer (ReALLM's k-means centroids); 0 for fixed code books. */
  codebookBytes: number;
  /** A stored column permutation (ReALLM); 0 where there is none. */
  permutationBytes: number;
  /** Low-rank factors stored with the layer (ReALLM's L₁, L₂); 0 for pure grids. */
  lowRankBytes: number;
  /** The layer's bias as stored; 0 without one. */
  biasBytes: number;
}
