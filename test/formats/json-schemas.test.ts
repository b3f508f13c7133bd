// JSON the project reads goes through a schema: a missing or mistyped field is a typed error naming
// the file, the field and what was expected — never a TypeError from a bare cast.

import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { findClassifierHead, saveClassifierHead } from "../../src/formats/classifier-head.js";
import { loadCheckpoint, saveCheckpoint } from "../../src/formats/checkpoint.js";
import { loadPeqaAdapter, savePeqaAdapter } from "../../src/formats/peqa-adapter.js";
import { initialScales } from "../../src/methods/peqa/index.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import type { QuantizedModel } from "../../src/quant/types.js";
import { tinyModel } from "../quant/helpers.js";
import { expectSlimtuneError } from "./helpers.js";
import { scratchDir } from "../helpers/paths.js";

function edit(file: string, change: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, "utf8"));
  change(json);
  fs.writeFileSync(file, JSON.stringify(json));
}

describe("PEQA adapter config", () => {
  let qm: QuantizedModel;
  let dir: string;
  beforeAll(() => {
    qm = quantizeModel(tinyModel("llama"), { scheme: "rtn", bits: 4, groupSize: "channel", symmetric: false });
    dir = path.join(scratchDir("peqa-json"), "a");
    savePeqaAdapter(dir, qm, initialScales(qm));
  });
  it.each([
    ["base_fingerprint missing", (j: Record<string, unknown>) => delete j.base_fingerprint, ['"base_fingerprint" is missing', "sha256"]],
    ["layers not a list", (j: Record<string, unknown>) => (j.layers = "all"), ['"layers" is "all"', "list of module paths"]],
    ["version 2", (j: Record<string, unknown>) => (j.version = 2), ['"version" is 2']],
  ])("%s → E_CONFIG naming the file and field", (_label, change, mentions) => {
    const copy = path.join(scratchDir("peqa-json-bad"), "a");
    fs.cpSync(dir, copy, { recursive: true });
    edit(path.join(copy, "peqa_adapter.json"), change);
    expectSlimtuneError(() => loadPeqaAdapter(copy, qm), "E_CONFIG", "peqa_adapter.json", ...mentions);
  });
});

describe("classifier head config", () => {
  it("max_len missing → E_CONFIG naming the field", () => {
    const dir = scratchDir("cls-json");
    saveClassifierHead(dir, { data: new Float32Array(2 * 8), shape: [2, 8] }, { maxLen: 64, padId: 0 });
    expect(findClassifierHead([dir])!.maxLen).toBe(64);
    edit(path.join(dir, "classifier.json"), (j) => delete j.max_len);
    expectSlimtuneError(() => findClassifierHead([dir]), "E_CONFIG", "classifier.json", '"max_len" is missing', "positive integer");
  });
});

describe("checkpoint state", () => {
  const trainable = new Map([["w", { data: new Float32Array([1, 2, 3]), shape: [3] }]]);
  const state = { format: "slimtune-checkpoint" as const, version: 1 as const, method: "full", step: 3, rng: [1, 2, 3, 4], fixed: { batch: 2 }, elapsedSeconds: 1, tokensSeen: 10 };
  const moments = { step: 3, m: new Map([["w", new Float32Array(3)]]), v: new Map([["w", new Float32Array(3)]]) };

  it("round-trips, and a missing step is E_CHECKPOINT naming the field", () => {
    const dir = path.join(scratchDir("ckpt-json"), "checkpoint");
    saveCheckpoint(dir, state, trainable, moments);
    expect(loadCheckpoint(dir, { method: "full", fixed: { batch: 2 } }, trainable).state.step).toBe(3);
    edit(path.join(dir, "state.json"), (j) => delete j.step);
    expectSlimtuneError(() => loadCheckpoint(dir, { method: "full", fixed: { batch: 2 } }, trainable), "E_CHECKPOINT", "state.json", '"step" is missing');
  });

  it("a state.json that is not JSON is E_CHECKPOINT", () => {
    const dir = path.join(scratchDir("ckpt-json2"), "checkpoint");
    saveCheckpoint(dir, state, trainable, moments);
    fs.writeFileSync(path.join(dir, "state.json"), "{not json");
    expectSlimtuneError(() => loadCheckpoint(dir, { method: "full", fixed: {} }, trainable), "E_CHECKPOINT", "not valid JSON");
  });
});
