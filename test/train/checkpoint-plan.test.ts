// The decision to checkpoint activations on its own: only when the run would not fit with every
// activation kept, said with both numbers, and still E_MEMORY when even checkpointing cannot fit.

import { describe, expect, it } from "vitest";
import { SlimtuneError } from "../../src/core/errors.js";
import { readLlamaConfig } from "../../src/formats/hf-config.js";
import { estimateTrainingMemory, planCheckpointing } from "../../src/train/memory.js";
import { REF_MODEL } from "../helpers/paths.js";

const config = readLlamaConfig(REF_MODEL);
const run = { config, totalParameters: 5_475_584, trainableParameters: 5_475_584, batch: 8, seq: 1024 };
const kept = estimateTrainingMemory({ ...run, checkpointActivations: false }).totalBytes;
const checkpointed = estimateTrainingMemory({ ...run, checkpointActivations: true }).totalBytes;

describe("planCheckpointing", () => {
  it("has room to decide: checkpointing this run needs less than keeping every activation", () => {
    expect(checkpointed).toBeLessThan(kept * 0.8);
  });

  it("keeps every activation when the run fits", () => {
    const plan = planCheckpointing(run, false, kept + 1);
    expect(plan.checkpointActivations).toBe(false);
    expect(plan.note).toBeNull();
    expect(plan.estimate.totalBytes).toBe(kept);
  });

  it("turns checkpointing on and says why when only the checkpointed run fits", () => {
    const available = Math.round((kept + checkpointed) / 2);
    const plan = planCheckpointing(run, false, available);
    expect(plan.checkpointActivations).toBe(true);
    expect(plan.estimate.totalBytes).toBe(checkpointed);
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
    expect(plan.note).toContain(`activations checkpointed: estimate ${gib(kept)} > available ${gib(available)}`);
  });

  it("keeps checkpointing the user asked for, even with room to spare", () => {
    const plan = planCheckpointing(run, true, 10 * kept);
    expect(plan.checkpointActivations).toBe(true);
    expect(plan.note).toBeNull();
  });

  it("refuses with E_MEMORY when even the checkpointed run does not fit", () => {
    let caught: unknown = null;
    try {
      planCheckpointing(run, false, checkpointed - 1);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SlimtuneError);
    expect((caught as SlimtuneError).code).toBe("E_MEMORY");
  });
});
