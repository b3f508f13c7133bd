// PEQA (Kim et al. 2023): a b-bit model whose integer codes and zero points stay frozen while its
// scales train. The result is a task adapter of scale vectors for one shared integer model.

import type { HostParam } from "../../arch/params.js";
import { SlimtuneError } from "../../core/errors.js";
import type { Graph } from "../../engine/index.js";
import { type PeqaAdapter, isPeqaAdapter, loadPeqaAdapter, savePeqaAdapter } from "../../formats/peqa-adapter.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import { scaleName, scaleShape } from "../../quant/scales.js";
import { type QuantizedModel, gridLayer } from "../../quant/types.js";
import { quantizedBase } from "../base.js";
import { type TuningMethod, defineMethod } from "../method.js";

/** Scale tensors of the base, copied (so training never edits the base), or an adapter's. */
export function initialScales(qm: QuantizedModel, from?: PeqaAdapter): Map<string, HostParam> {
  const out = new Map<string, HostParam>();
  for (const [p, layer] of qm.linears) {
    const q = gridLayer(layer, p, "PEQA");
    const name = scaleName(p);
    const init = from?.scales.get(name)?.data ?? q.scales;
    out.set(name, { data: Float32Array.from(init), shape: scaleShape(q) });
  }
  return out;
}

export function peqaMethod(qm: QuantizedModel, opts: { from?: PeqaAdapter } = {}): TuningMethod {
  const scales = initialScales(qm, opts.from);
  let total = 0;
  for (const q of qm.linears.values()) total += q.outFeatures * q.inFeatures;
  for (const d of qm.dense.values()) total += d.data.length;
  return {
    name: "peqa",
    config: qm.config,
    trainable: scales,
    params: (graph: Graph) => new QuantizedParams(graph, qm, { scaleInputs: true }),
    // Decay would pull scales toward zero, i.e. shrink every weight: never wanted here.
    decay: () => false,
    save: (outDir: string) => savePeqaAdapter(outDir, qm, scales),
    totalParameters: total,
  };
}

export const peqaDefinition = defineMethod({
  name: "peqa",
  defaultLr: 2e-3,
  summary: "scales of a quantized model train; codes and zeros stay frozen (a task = scale vectors)",
  needs: "quantized",
  flags: {},
  create: (base, _o, ctx) => {
    const qm = quantizedBase(base, "peqa");
    return peqaMethod(qm, ctx.adapter ? { from: loadPeqaAdapter(ctx.adapter, qm) } : {});
  },
  adapter: {
    detect: isPeqaAdapter,
    load: (base, dir) => {
      if (base.kind !== "quantized") {
        throw new SlimtuneError("E_ARG", "a PEQA adapter holds scales for a quantized model; pass that quantized folder as --model", dir);
      }
      return peqaMethod(base.model, { from: loadPeqaAdapter(dir, base.model) });
    },
  },
});
