// Two runs of the same training step (checkpointed or not, one chain or several) must agree:
// the loss within `lossTol`, every trainable parameter's gradient within 1e-5 of its largest entry.

import { expect } from "vitest";
import type { HostTensor } from "../../src/engine/index.js";
import { gradName } from "../../src/models/llama/lm-graphs.js";

export function expectSameStep(trainable: Iterable<string>, a: Record<string, HostTensor>, b: Record<string, HostTensor>, lossTol: number): void {
  expect(Math.abs((b.loss!.data[0] as number) - (a.loss!.data[0] as number))).toBeLessThan(lossTol);
  for (const name of trainable) {
    const ga = a[gradName(name)]!.data as Float32Array;
    const gb = b[gradName(name)]!.data as Float32Array;
    let scale = 0;
    let worst = 0;
    ga.forEach((v, i) => {
      scale = Math.max(scale, Math.abs(v));
      worst = Math.max(worst, Math.abs(v - gb[i]!));
    });
    expect(worst, name).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1e-3));
  }
}
