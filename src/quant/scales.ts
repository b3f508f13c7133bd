// The scale vectors of quantized layers as tensors of their own: how PEQA trains them, feeds them
// to a graph and stores them in an adapter.

import type { GridLinear } from "./types.js";

/** The graph input and adapter tensor name of a layer's scales. */
export const scaleName = (path: string): string => `${path}.scales`;

/** The shape a layer's scales take as a tensor: [N] per channel, [N, G] per group. */
export function scaleShape(q: GridLinear): number[] {
  const G = q.inFeatures / q.groupSize;
  return G === 1 ? [q.outFeatures] : [q.outFeatures, G];
}
