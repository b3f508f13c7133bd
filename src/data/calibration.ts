// Calibration windows for GPTQ (and ReALLM's block-wise phase): `samples` windows of `seq` tokens
// drawn at seeded random starts from a token stream, as the GPTQ reference draws its C4/WikiText
// samples. The stream must hold at least samples × seq tokens, so that windows can cover distinct text.

import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";

export interface CalibrationOptions {
  samples: number;
  seq: number;
  seed: number;
  /** Named in error messages (the --calib file). */
  source?: string;
}

/** Token ids [samples · seq], window after window. */
export function calibrationWindows(tokens: Int32Array, opts: CalibrationOptions): Int32Array {
  const { samples, seq } = opts;
  if (!Number.isInteger(samples) || samples < 1) throw new SlimtuneError("E_ARG", `--calib-samples ${samples} must be a positive integer; GPTQ uses 128`);
  if (!Number.isInteger(seq) || seq < 2) throw new SlimtuneError("E_ARG", `--calib-seq ${seq} must be an integer >= 2; GPTQ uses 2048 on large models, 256 suits small ones`);
  const need = samples * seq;
  if (tokens.length < need) {
    const fit = Math.floor(tokens.length / seq);
    throw new SlimtuneError(
      "E_DATA",
      `calibration text has ${tokens.length} tokens, fewer than --calib-samples ${samples} × --calib-seq ${seq} = ${need}; ` +
        (fit >= 1 ? `use --calib-samples ${fit} (or shorter windows), or a longer text` : `use a shorter --calib-seq (at most ${tokens.length}) or a longer text`),
      opts.source,
    );
  }
  const rng = new Rng(opts.seed);
  const out = new Int32Array(need);
  const starts = tokens.length - seq + 1;
  for (let s = 0; s < samples; s++) {
    const start = rng.int(starts);
    out.set(tokens.subarray(start, start + seq), s * seq);
  }
  return out;
}
