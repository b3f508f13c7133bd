// A large model's page keeps one phase's ONNX Runtime sessions at a time (WebSession.releaseFor):
// training holds only its method's step graph, generating only its decoder, so ORT-web's WASM heap
// peaks at the largest phase instead of their sum (the SmolLM2-shape crash, docs/benchmarks.md).
// Counted through a binding that wraps onnxruntime-node's sessions; the threshold is lowered so the
// reference model counts as large. Losses and tokens are those of a session that keeps everything.

import fs from "node:fs";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { useOrtBinding } from "../../src/engine/ort-binding.js";
import { WebSession, defaultWebTrainOptions } from "../../src/web/session.js";
import { WIKITEXT_VALID } from "../helpers/paths.js";
import { SPEC, refModelFiles } from "./ref-files.js";

const TEXT = fs.readFileSync(WIKITEXT_VALID, "utf8").slice(0, 20_000);
const OPTS = { ...defaultWebTrainOptions, steps: 4, lr: 1e-2, batch: 2, seq: 32, heldOut: 0 };

let live = 0;
/** Set to make every run fail as ORT-web does when its WASM heap is full. */
let heapFull = false;
const counted: typeof ort.InferenceSession = Object.assign(Object.create(ort.InferenceSession), {
  async create(...args: Parameters<typeof ort.InferenceSession.create>) {
    const session = await ort.InferenceSession.create(...args);
    live++;
    const release = session.release.bind(session);
    const run = session.run.bind(session) as (...a: unknown[]) => ReturnType<typeof session.run>;
    (session as { run: unknown }).run = (...a: unknown[]) => (heapFull ? Promise.reject(new Error("failed to call OrtRun(). ERROR_CODE: 6, ERROR_MESSAGE: std::bad_alloc")) : run(...a));
    session.release = async () => {
      live--;
      return release();
    };
    return session;
  },
});
useOrtBinding({ InferenceSession: counted, Tensor: ort.Tensor });

/** PEQA steps, a decode, LoRA steps, a decode, PEQA again: losses, tokens and live sessions after each. */
async function phases(s: WebSession) {
  const out: { what: string; value: number | number[]; live: number }[] = [];
  const train = async (kind: "peqa" | "lora", steps: number) => {
    s.startTraining(kind, TEXT, OPTS);
    for (let i = 0; i < steps; i++) out.push({ what: `${kind} step`, value: (await s.trainStep()).loss, live });
  };
  const generate = async (adapter: string) => {
    s.keepAdapter(adapter);
    out.push({ what: `${adapter} decode`, value: (await s.generate("The history of the city", 6)).ids, live });
  };
  s.quantize(SPEC);
  await train("peqa", 2);
  await generate("peqa");
  await train("lora", 2);
  await generate("lora");
  s.useAdapter("peqa");
  await generate("peqa");
  await train("peqa", 1);
  return out;
}

describe("a large model in the page keeps one phase's sessions", () => {
  it("training frees the decoders, generating frees the step graphs and the other decoder; losses and tokens unchanged", async () => {
    const keepAll = WebSession.open(refModelFiles(), { threads: 2 });
    const all = await phases(keepAll);
    await keepAll.release();
    expect(live).toBe(0);
    const large = WebSession.open(refModelFiles(), { threads: 2 });
    large.onePhaseAboveBytes = 0;
    const one = await phases(large);
    expect(one.map((p) => [p.what, p.value])).toEqual(all.map((p) => [p.what, p.value]));
    // Below the threshold sessions pile up (two step graphs and two decoders by the end) …
    expect(all.at(-1)!.live).toBe(4);
    // … above it, one session at a time: a step graph while training, a decoder while generating.
    expect(one.map((p) => p.live)).toEqual(one.map(() => 1));
    await large.release();
    expect(live).toBe(0);
  }, 120_000);

  it("a step or decode that runs out of ORT's memory is E_MEMORY saying what to change", async () => {
    const s = WebSession.open(refModelFiles(), { threads: 2 });
    s.startTraining("lora", TEXT, OPTS);
    await s.trainStep();
    heapFull = true;
    try {
      await expect(s.trainStep()).rejects.toMatchObject({ code: "E_MEMORY", message: expect.stringMatching(/^the training step ran out of ONNX Runtime's memory \(in a page its WebAssembly heap, at most 4 GiB\): failed to call OrtRun\(\)\. ERROR_CODE: 6, ERROR_MESSAGE: std::bad_alloc\. Use a smaller model, batch or seq/) });
      await expect(s.generate("The history", 4)).rejects.toMatchObject({ code: "E_MEMORY", message: expect.stringMatching(/^generating ran out of ONNX Runtime's memory/) });
    } finally {
      heapFull = false;
    }
    expect((await s.generate("The history", 4)).ids).toHaveLength(4);
    await s.release();
  }, 60_000);
});
