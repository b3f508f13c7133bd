// LQ-LoRA's init: a grid residual plus low-rank factors that, loaded as the PEFT adapter
// `quantize --method lqlora` writes (α = r), add exactly L₁·L₂ to the quantized base.

import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LINEAR_MODULES } from "../../src/arch/llama/shapes.js";
import type { HostParam } from "../../src/arch/params.js";
import { loraKeys, savePeftAdapter } from "../../src/formats/peft.js";
import { qloraFromAdapter } from "../../src/methods/qlora/index.js";
import { dequantize } from "../../src/quant/kinds/index.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { lqloraQuantizeModel } from "../../src/quant/lqlora.js";
import { tempDir } from "../formats/helpers.js";
import { tinyModel } from "./helpers.js";

const gemm = new HostGemm({ threads: 1 });
afterAll(() => gemm.release());
const dir = tempDir("lqlora");

describe("lqloraQuantizeModel", () => {
  it("lowers every layer's error below the grid alone, and its adapter adds L₁·L₂", async () => {
    const model = tinyModel("llama", 4);
    const spec = { scheme: "rtn" as const, bits: 2 as const, groupSize: 32, symmetric: false };
    const { qm, factors, report } = await lqloraQuantizeModel(model, spec, { rank: 8, gemm, seed: 0 });
    for (const l of report.layers) expect(Math.min(...l.errors)).toBeLessThan(l.quantOnlyError);
    const tensors = new Map<string, HostParam>();
    for (const [p, f] of factors) {
      const { a, b } = loraKeys(p);
      tensors.set(a, { data: f.l2, shape: [8, f.l2.length / 8] });
      tensors.set(b, { data: f.l1, shape: [f.l1.length / 8, 8] });
    }
    const adapterDir = path.join(dir, "adapter");
    savePeftAdapter(adapterDir, { r: 8, loraAlpha: 8, targetModules: [...LINEAR_MODULES], baseModelNameOrPath: null }, tensors);
    const method = qloraFromAdapter(qm, adapterDir);
    expect(method.scale).toBe(1);
    // Ŵ = Q̂ + scale·B·A reproduces W better than Q̂ alone, layer by layer.
    for (const [p, q] of qm.linears) {
      const w = model.weights.get(`${p}.weight`)!.data;
      const deq = dequantize(q);
      const f = factors.get(p)!;
      const k = q.inFeatures;
      let errQ = 0;
      let errLq = 0;
      for (let i = 0; i < q.outFeatures; i++) {
        for (let j = 0; j < k; j++) {
          let l = 0;
          for (let t = 0; t < 8; t++) l += f.l1[i * 8 + t]! * f.l2[t * k + j]!;
          errQ += (w[i * k + j]! - deq[i * k + j]!) ** 2;
          errLq += (w[i * k + j]! - deq[i * k + j]! - l) ** 2;
        }
      }
      expect(errLq).toBeLessThan(errQ);
    }
  });
});
