// The quantized kinds, one module each, behind one table: quantize a weight, dequantize a layer,
// and count its storage. A new kind is a module in this folder plus one entry here.

import type { QuantScheme, QuantSpec, QuantizedLinear } from "../types.js";
import { dequantizeNf4, nf4Storage, quantizeNf4 } from "./nf4.js";
import { type RtnStats, dequantizeRtn, quantizeRtn, rtnStorage } from "./rtn.js";
import type { LayerStorage } from "./storage.js";

export type { LayerStorage } from "./storage.js";

export interface QuantizeOptions {
  /** Module path used in error messages. */
  layer?: string;
  /** RTN counters (zero points widened), added to across calls. */
  stats?: RtnStats;
}

interface QuantKind {
  quantize(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: QuantizeOptions): QuantizedLinear;
  dequantize(q: QuantizedLinear): Float32Array;
  storage(q: QuantizedLinear): LayerStorage;
}

// Each entry narrows to its own layer type; the table is indexed by the layer's own kind.
const kinds: Record<QuantScheme, QuantKind> = {
  rtn: {
    quantize: (w, n, k, spec, opts) => quantizeRtn(w, n, k, spec, opts),
    dequantize: (q) => dequantizeRtn(q as Extract<QuantizedLinear, { kind: "rtn" }>),
    storage: (q) => rtnStorage(q as Extract<QuantizedLinear, { kind: "rtn" }>),
  },
  nf4: {
    quantize: (w, n, k, spec, opts) => quantizeNf4(w, n, k, spec, opts),
    dequantize: (q) => dequantizeNf4(q as Extract<QuantizedLinear, { kind: "nf4" }>),
    storage: (q) => nf4Storage(q as Extract<QuantizedLinear, { kind: "nf4" }>),
  },
};

/** Quantizes one weight W [n, k] with the spec's kind. */
export function quantizeLinear(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: QuantizeOptions = {}): QuantizedLinear {
  return kinds[spec.scheme].quantize(w, n, k, spec, opts);
}

/** Ŵ [N, K] (row-major) of any quantized layer, in float32. */
export function dequantize(q: QuantizedLinear): Float32Array {
  return kinds[q.kind].dequantize(q);
}

/** What the layer occupies in the folder slimtune writes for its kind. */
export function layerStorage(q: QuantizedLinear): LayerStorage {
  return kinds[q.kind].storage(q);
}
