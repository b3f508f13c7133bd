// The training graphs on onnxruntime-web's WebGPU EP, in headless Chromium with SwiftShader's
// software WebGPU adapter (WEBGPU_ARGS): one PEQA and one LoRA step against Node. Opt-in
// (SLIMTUNE_WEBGPU=1): a step takes minutes in software. What it found (docs/benchmarks.md §4) is
// what the page's WebGPU fallback rests on: LoRA's loss is Node's, PEQA's is not — if PEQA ever
// matches, this test fails and the page's fallback (web/page.js) can go.

import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSession, defaultWebTrainOptions } from "../../src/web/session.js";
import { WIKITEXT_VALID } from "../helpers/paths.js";
import { type BrowserRig, WEBGPU_ARGS, openRig } from "./browser-harness.js";
import { SPEC, refModelFiles } from "./ref-files.js";

const TEXT = fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 20_000);
const OPTS = { ...defaultWebTrainOptions, steps: 2, lr: 2e-3, batch: 2, seq: 32, heldOut: 0 };

describe.runIf(process.env.SLIMTUNE_WEBGPU === "1")("training steps on ORT-web's WebGPU EP (SwiftShader)", () => {
  let rig: BrowserRig;
  beforeAll(async () => {
    rig = await openRig("?model=/models/ref-llama-5m/&threads=2&ep=webgpu-unchecked", WEBGPU_ARGS);
  }, 300_000);
  afterAll(async () => rig?.close());

  it("LoRA's first loss is Node's; PEQA's is off by more than 1 %", async () => {
    expect(await rig.page.textContent("#status")).toMatch(/^Model loaded\. Engine: onnxruntime-web webgpu/);
    const node = WebSession.open(refModelFiles(), { threads: 2 });
    node.quantize(SPEC);
    const gaps: Record<string, number> = {};
    for (const kind of ["peqa", "lora"] as const) {
      node.startTraining(kind, TEXT, OPTS);
      const inNode = (await node.trainStep()).loss;
      const inPage = await rig.page.evaluate(
        async ({ kind, text, opts, spec }) => {
          const s = (globalThis as unknown as { slimtuneApp: { state: { session: WebSession } } }).slimtuneApp.state.session;
          if (!s.isQuantized) s.quantize(spec);
          s.startTraining(kind, text, opts);
          const t0 = performance.now();
          const r = await s.trainStep();
          return { loss: r.loss, seconds: (performance.now() - t0) / 1000 };
        },
        { kind, text: TEXT, opts: OPTS, spec: SPEC },
      );
      gaps[kind] = Math.abs(inPage.loss - inNode) / inNode;
      console.log(`${kind} on WebGPU: loss ${inPage.loss} (page, ${inPage.seconds.toFixed(0)} s for the first step) vs ${inNode} (Node)`);
    }
    await node.release();
    console.log(rig.log.filter((l) => /assigned|webgpu/i.test(l)).join("\n"));
    expect(gaps.lora).toBeLessThanOrEqual(1e-5);
    expect(gaps.peqa).toBeGreaterThan(0.01);
  }, 900_000);
});
