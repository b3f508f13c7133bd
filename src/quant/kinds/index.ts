// The quantized kinds, one module each, behind one table: dequantize a layer and count its storage;
// grid kinds (RTN, NF4) also quantize a weight here in one call. ReALLM's layers come from an
// optimisation over the whole matrix (quant/reallm.ts). A new kind is a module here plus its entries.

import type { GridScheme, QuantSpec, QuantizedLinear } from "../types.js";
import { dequantizeNf4, nf4Storage, quantizeNf4 } from "./nf4.js";
import { type RtnStats, dequantizeRtn, quantizeRtn, rtnStorage } from "./rtn.js";
import { dequantizeReallm, reallmStorage } from "./reallm.js";
import type { LayerStorage } from "./storage.js";

export type { LayerStorage } from "./storage.js";

export interface QuantizeOptions {
  /** Module path used in error messages. */
  layer?: string;
  /** RTN counters (zero points widened), added to across calls. */
  stats?: RtnStats;
}

interface QuantKind {
  dequantize(q: QuantizedLinear): Float32Array;
  storage(q: QuantizedLinear): LayerStorage;
}

type Quantizer = (w: Float32Array, n: number, k: number, spec: QuantSpec, opts: QuantizeOptions) => QuantizedLinear;

// Each entry narrows to its own layer type; the table is indexed by the layer's own kind.
const kinds: { [K in QuantizedLinear["kind"]]: QuantKind } = {
  rtn: {
    dequantize: (q) => dequantizeRtn(q as Extract<QuantizedLinear, { kind: "rtn" }>),
    storage: (q) => rtnStorage(q as Extract<QuantizedLinear, { kind: "rtn" }>),
  },
  nf4: {
    dequantize: (q) => dequantizeNf4(q as Extract<QuantizedLinear, { kind: "nf4" }>),
    storage: (q) => nf4Storage(q as Extract<QuantizedLinear, { kind: "nf4" }>),
  },
  reallm: {
    dequantize: (q) => dequantizeReallm(q as Extract<QuantizedLinear, { kind: "reallm" }>),
    storage: (q) => reallmStorage(q as Extract<QuantizedLinear, { kind: "reallm" }>),
  },
};

const quantizers: Record<GridScheme, Quantizer> = {
  rtn: (w, n, k, spec, opts) => quantizeRtn(w, n, k, spec, opts),
  nf4: (w, n, k, spec, opts) => quantizeNf4(w, n, k, spec, opts),
};

/** Quantizes one weight W [n, k] with the spec's kind. */
export function quantizeLinear(w: Float32Array, n: number, k: number, spec: QuantSpec, opts: QuantizeOptions = {}): QuantizedLinear {
  return quantizers[spec.scheme](w, n, k, spec, opts);
}

/** Ŵ [N, K] (row-major) of any quantized layer, in float32. */
export function dequantize(q: QuantizedLinear): Float32Array {
  return kinds[q.kind].dequantize(q);
}

/** What the layer occupies in the folder slimtune writes for its kind. */
export function layerStorage(q: QuantizedLinear): LayerStorage {
  return kinds[q.kind].storage(q);
}
