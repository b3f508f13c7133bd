// A fingerprint of what a quantized model's scales are valid for: the codes and zero points of
// every layer. PEQA adapters record it so they are never applied to another base.

import { sha256 } from "../core/sha256.js";
import type { QuantizedModel } from "./types.js";

/** sha256 over every layer's path, shape, bits, codes and zero points. */
export function codesFingerprint(qm: QuantizedModel): string {
  const h = sha256();
  for (const p of [...qm.linears.keys()].sort()) {
    const q = qm.linears.get(p)!;
    if (q.kind === "reallm") {
      // PEQA never adapts these; hashed whole so a fingerprint still tells two models apart.
      h.update(`${p}:${q.outFeatures}x${q.inFeatures}:${JSON.stringify(q.spec)}\n`);
      h.update(q.vqCodes);
      continue;
    }
    h.update(`${p}:${q.outFeatures}x${q.inFeatures}/${q.groupSize}:${q.spec.bits}\n`);
    h.update(q.codes);
    if (q.zeros) h.update(q.zeros);
    if (q.kind === "rtn" && q.groupIndex) h.update(new Uint8Array(q.groupIndex.buffer, q.groupIndex.byteOffset, q.groupIndex.byteLength));
  }
  return `sha256:${h.hex()}`;
}
