// AdamW with torch.optim.AdamW semantics over named Float32Array parameters, updated in place.

import { isNormOrBias } from "../arch/llama/names.js";
import { SlimtuneError } from "../core/errors.js";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay; by default all but norm weights and biases. */
  decay?: (name: string) => boolean;
  /** Per-parameter multiplier of the learning rate (e.g. gates that must travel further); default 1. */
  lrScale?: (name: string) => number;
}

export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export const defaultDecay = (name: string): boolean => !isNormOrBias(name);

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly params: Map<string, Float32Array>;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly decayed = new Set<string>();
  private readonly lrScales = new Map<string, number>();
  private t = 0;

  constructor(params: Map<string, Float32Array>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    checkRange("beta1", this.beta1, 0, 1);
    checkRange("beta2", this.beta2, 0, 1);
    if (!(this.eps >= 0)) throw new SlimtuneError("E_ARG", `AdamW eps ${this.eps} must be >= 0`);
    if (!(this.weightDecay >= 0)) {
      throw new SlimtuneError("E_ARG", `weight decay ${this.weightDecay} must be >= 0; pass e.g. --weight-decay 0.01`);
    }
    const decay = opts.decay ?? defaultDecay;
    this.params = params;
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.length));
      this.v.set(name, new Float32Array(p.length));
      if (decay(name)) this.decayed.add(name);
      const scale = opts.lrScale?.(name) ?? 1;
      if (scale !== 1) this.lrScales.set(name, scale);
    }
  }

  get stepCount(): number {
    return this.t;
  }

  /**
   * One update. Parameters without a gradient are left untouched (no decay either, as in PyTorch), but
   * the step count is shared, unlike PyTorch's per-parameter count. `gradScale` (clipScale's factor)
   * multiplies every gradient as it is read, rounded to float32 exactly as clipping the gradients in
   * place would store them, so clipping costs no pass of its own; the gradients are not modified.
   */
  step(grads: Map<string, Float32Array>, lr: number, gradScale = 1): void {
    if (!(Number.isFinite(gradScale) && gradScale > 0)) throw new SlimtuneError("E_ARG", `AdamW gradient scale ${gradScale} must be a positive finite number`);
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new SlimtuneError("E_ARG", `gradient for "${name}" has no matching parameter in the optimizer`);
      if (g.length !== p.length) {
        throw new SlimtuneError("E_SHAPE", `gradient for "${name}" has ${g.length} values; its parameter has ${p.length}`);
      }
    }
    const t = ++this.t;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    const eps = this.eps;
    const invBc2Sqrt = 1 / Math.sqrt(1 - Math.pow(b2, t));
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const lrHere = lr * (this.lrScales.get(name) ?? 1);
      const stepSize = lrHere / (1 - Math.pow(b1, t));
      const keep = this.decayed.has(name) ? 1 - lrHere * this.weightDecay : 1;
      const n = p.length;
      for (let i = 0; i < n; i++) {
        const gi = Math.fround(g[i]! * gradScale);
        const mi = b1 * m[i]! + c1 * gi;
        const vi = b2 * v[i]! + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) * invBc2Sqrt + eps);
      }
    }
  }

  /** The live moment buffers (not copies): serialise them before the next step. */
  exportState(): AdamWState {
    return { step: this.t, m: this.m, v: this.v };
  }

  importState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new SlimtuneError("E_CHECKPOINT", `optimizer step ${state.step} is not a non-negative integer; the checkpoint is corrupt`);
    }
    for (const [which, saved] of [["m", state.m], ["v", state.v]] as const) {
      for (const name of saved.keys()) {
        if (!this.params.has(name)) {
          throw new SlimtuneError(
            "E_CHECKPOINT",
            `optimizer state "${which}" has "${name}", which is not a trainable parameter of this run; resume with the same method and options`,
          );
        }
      }
      for (const [name, p] of this.params) {
        const s = saved.get(name);
        if (!s) {
          throw new SlimtuneError(
            "E_CHECKPOINT",
            `optimizer state "${which}" has no entry for "${name}"; resume with the same method and options`,
          );
        }
        if (s.length !== p.length) {
          throw new SlimtuneError(
            "E_CHECKPOINT",
            `optimizer state "${which}" for "${name}" has ${s.length} values; the parameter has ${p.length}; resume with the same model and method options`,
          );
        }
      }
    }
    for (const name of this.params.keys()) {
      this.m.get(name)!.set(state.m.get(name)!);
      this.v.get(name)!.set(state.v.get(name)!);
    }
    this.t = state.step;
  }
}

function checkRange(what: string, x: number, lo: number, hi: number): void {
  if (!(x >= lo && x < hi)) throw new SlimtuneError("E_ARG", `AdamW ${what} ${x} must be in [${lo}, ${hi})`);
}
