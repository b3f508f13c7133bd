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
  /** The layer's bias as stored; 0 without one. */
  biasBytes: number;
}
