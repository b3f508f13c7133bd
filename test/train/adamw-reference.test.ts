// Ten steps of full fine-tuning through the training loop against PyTorch
// (ref-llama-5m/reference.json, full_adamw_10_steps): torch.optim.AdamW, lr 1e-3, betas (0.9, 0.999),
// eps 1e-8, constant lr, no clipping, float32, on one fixed batch; the loss before each step and the
// global gradient norm, with weight decay 0 and 0.1.
//
// PyTorch decays every parameter. slimtune's full fine-tuning exempts norm weights and biases from
// decay (as transformers' Trainer does; embeddings are decayed). So the 0.1 trajectory is checked
// with the method's decay rule widened to every parameter, and the rule itself is checked apart.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { fullFineTuning } from "../../src/methods/full/index.js";
import type { TuningMethod } from "../../src/methods/method.js";
import { LlamaModel } from "../../src/models/llama/model.js";
import { defaultTrainOptions, train } from "../../src/train/loop.js";
import { fixedBatchTask } from "../helpers/fixed-batch-task.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

interface Trajectory {
  loss_before_step: number[];
  loss_after_last_step: number;
  grad_norm: number[];
}
interface Reference {
  input_ids: number[][];
  targets: number[][];
  full_adamw_10_steps: Record<"weight_decay_0.0" | "weight_decay_0.1", Trajectory>;
}

const ref = JSON.parse(fs.readFileSync(path.join(REF_MODEL, "reference.json"), "utf8")) as Reference;

// Measured: the loss agrees to 1e-6 at every step and the gradient norms to 3e-6 relative. The
// decay-0 and decay-0.1 trajectories differ by 1e-5 at step 1 and by 3e-4 … 1.2e-3 from step 2 on,
// and exempting the norms from decay (slimtune's own rule) moves step 1 by 4e-5: these bounds tell
// each apart.
const LOSS_ATOL = 1e-5;
const NORM_RTOL = 2e-5;

async function trajectory(method: TuningMethod, weightDecay: number): Promise<{ losses: number[]; norms: number[] }> {
  const losses: number[] = [];
  const norms: number[] = [];
  // One more step than the reference: its loss is the reference's loss after the last update.
  await train(
    method,
    fixedBatchTask(ref.input_ids, ref.targets),
    { ...defaultTrainOptions, steps: 11, lr: 1e-3, warmupSteps: 0, minLrRatio: 1, clip: 0, weightDecay, evalEvery: 0, checkpointEvery: 0, outDir: scratchDir("adamw-ref") },
    { onStep: (r) => (losses.push(r.loss), norms.push(r.gradNorm)) },
  );
  return { losses, norms };
}

function expectTrajectory(got: { losses: number[]; norms: number[] }, want: Trajectory): void {
  const losses = [...want.loss_before_step, want.loss_after_last_step];
  losses.forEach((l, i) => expect(Math.abs(got.losses[i]! - l), `loss before step ${i}`).toBeLessThan(LOSS_ATOL));
  want.grad_norm.forEach((n, i) => expect(Math.abs(got.norms[i]! - n) / n, `gradient norm at step ${i}`).toBeLessThan(NORM_RTOL));
}

describe("ten AdamW steps of full fine-tuning match PyTorch", () => {
  it("weight decay 0", async () => {
    expectTrajectory(await trajectory(fullFineTuning(LlamaModel.load(REF_MODEL)), 0), ref.full_adamw_10_steps["weight_decay_0.0"]);
  });

  it("weight decay 0.1 on every parameter (PyTorch's rule)", async () => {
    const method = { ...fullFineTuning(LlamaModel.load(REF_MODEL)), decay: () => true };
    const got = await trajectory(method, 0.1);
    expectTrajectory(got, ref.full_adamw_10_steps["weight_decay_0.1"]);
  });

  it("full fine-tuning's own rule decays every weight but the norms", () => {
    const method = fullFineTuning(LlamaModel.load(REF_MODEL));
    const exempt = [...method.trainable.keys()].filter((n) => !method.decay(n));
    expect(exempt.length).toBe(2 * method.config.numLayers + 1);
    for (const n of exempt) expect(n).toMatch(/norm\.weight$/);
    expect(method.decay("model.embed_tokens.weight")).toBe(true);
  });
});
