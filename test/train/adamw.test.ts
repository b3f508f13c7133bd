// Tests for AdamW against a float64 hand computation of torch.optim.AdamW, and its checkpoint state.

import { describe, expect, it } from "vitest";
import { AdamW, defaultDecay } from "../../src/train/adamw.js";
import { clipByGlobalNorm, clipScale, globalNorm } from "../../src/train/clip.js";

interface Ref {
  p: number;
  m: number;
  v: number;
}

// torch.optim.AdamW, written out the textbook way (bias-corrected m̂ and v̂) in float64.
function refStep(s: Ref, g: number, t: number, lr: number, wd: number, b1 = 0.9, b2 = 0.999, eps = 1e-8): Ref {
  const p = s.p * (1 - lr * wd);
  const m = b1 * s.m + (1 - b1) * g;
  const v = b2 * s.v + (1 - b2) * g * g;
  const mHat = m / (1 - b1 ** t);
  const vHat = v / (1 - b2 ** t);
  return { p: p - (lr * mHat) / (Math.sqrt(vHat) + eps), m, v };
}

describe("AdamW", () => {
  const p0 = [0.5, -1.2, 3.0, 0.0];
  const g1 = [0.1, -0.3, 2.5, 1e-4];
  const g2 = [-0.2, 0.05, 1.0, 0.0];

  it.each([
    { wd: 0, lr: 1e-2, name: "w" },
    { wd: 0.1, lr: 1e-2, name: "w" },
    { wd: 0.1, lr: 3e-1, name: "layer.weight" },
    { wd: 0.1, lr: 1e-2, name: "layer.bias" },
    { wd: 0.1, lr: 1e-2, name: "model.norm.weight" },
  ])("two steps match the float64 reference (wd $wd, lr $lr, $name)", ({ wd, lr, name }) => {
    const p = new Float32Array(p0);
    const opt = new AdamW(new Map([[name, p]]), { weightDecay: wd });
    const effWd = defaultDecay(name) ? wd : 0;
    let ref = p0.map((x) => ({ p: x, m: 0, v: 0 }));
    for (const [t, g] of [
      [1, g1],
      [2, g2],
    ] as const) {
      opt.step(new Map([[name, new Float32Array(g)]]), lr);
      ref = ref.map((s, i) => refStep(s, g[i]!, t, lr, effWd));
      for (let i = 0; i < p0.length; i++) expect(Math.abs(p[i]! - ref[i]!.p)).toBeLessThan(1e-6);
    }
    expect(opt.stepCount).toBe(2);
    const { m, v } = opt.exportState();
    for (let i = 0; i < p0.length; i++) {
      expect(m.get(name)![i]).toBeCloseTo(ref[i]!.m, 7);
      expect(v.get(name)![i]).toBeCloseTo(ref[i]!.v, 9);
    }
  });

  it("first step moves each parameter by about lr against its gradient sign", () => {
    const p = new Float32Array([1, 1, 1]);
    new AdamW(new Map([["w", p]])).step(new Map([["w", new Float32Array([5, -0.01, 0])]]), 0.1);
    expect(p[0]).toBeCloseTo(0.9, 6);
    expect(p[1]).toBeCloseTo(1.1, 6);
    expect(p[2]).toBe(1);
  });

  it("honours custom betas, eps and decay predicate", () => {
    const opts = { beta1: 0.5, beta2: 0.9, eps: 1e-3, weightDecay: 0.2, decay: (n: string) => n === "a" };
    const a = new Float32Array([2]);
    const b = new Float32Array([2]);
    const opt = new AdamW(
      new Map([
        ["a", a],
        ["b", b],
      ]),
      opts,
    );
    opt.step(
      new Map([
        ["a", new Float32Array([0.3])],
        ["b", new Float32Array([0.3])],
      ]),
      0.05,
    );
    expect(a[0]).toBeCloseTo(refStep({ p: 2, m: 0, v: 0 }, 0.3, 1, 0.05, 0.2, 0.5, 0.9, 1e-3).p, 6);
    expect(b[0]).toBeCloseTo(refStep({ p: 2, m: 0, v: 0 }, 0.3, 1, 0.05, 0, 0.5, 0.9, 1e-3).p, 6);
  });

  it.each([
    ["model.layers.0.self_attn.q_proj.weight", true],
    ["model.layers.0.input_layernorm.weight", false],
    ["model.norm.weight", false],
    ["lm_head.bias", false],
    ["lora_A", true],
  ])("default decay(%s) is %s", (name, want) => {
    expect(defaultDecay(name)).toBe(want);
  });

  it("skips a parameter without a gradient entirely (no decay, moments untouched)", () => {
    const a = new Float32Array([1, 2]);
    const b = new Float32Array([3, 4]);
    const opt = new AdamW(
      new Map([
        ["a", a],
        ["b", b],
      ]),
      { weightDecay: 0.5 },
    );
    opt.step(new Map([["a", new Float32Array([1, 1])]]), 0.1);
    expect(Array.from(b)).toEqual([3, 4]);
    expect(Array.from(opt.exportState().m.get("b")!)).toEqual([0, 0]);
    expect(a[0]).not.toBe(1);
  });

  it.each([
    ["unknown name", new Map([["zz", new Float32Array(2)]]), "E_ARG"],
    ["wrong length", new Map([["a", new Float32Array(3)]]), "E_SHAPE"],
  ])("rejects a gradient with %s", (_what, grads, code) => {
    const opt = new AdamW(new Map([["a", new Float32Array(2)]]));
    expect(() => opt.step(grads, 0.1)).toThrow(expect.objectContaining({ code }));
    expect(opt.stepCount).toBe(0);
  });

  it("a gradient scale gives bit for bit what clipping the gradients in place and stepping gives, and leaves them alone", () => {
    const make = () => new Map([["w", Float32Array.from({ length: 257 }, (_, i) => Math.sin(i) * 0.3)]]);
    const gradsAt = (t: number) => new Map([["w", Float32Array.from({ length: 257 }, (_, i) => Math.cos(i * t) * (3 + t))]]);
    const inPlace = make();
    const fused = make();
    const a = new AdamW(inPlace, { weightDecay: 0.1 });
    const b = new AdamW(fused, { weightDecay: 0.1 });
    for (let t = 1; t <= 5; t++) {
      const g1 = gradsAt(t);
      clipByGlobalNorm(g1, 1);
      a.step(g1, 1e-2);
      const g2 = gradsAt(t);
      const before = g2.get("w")!.slice();
      const scale = clipScale(globalNorm(g2.values()), 1);
      expect(scale).toBeLessThan(1);
      b.step(g2, 1e-2, scale);
      expect(g2.get("w")).toEqual(before);
    }
    expect(fused.get("w")).toEqual(inPlace.get("w"));
    expect(b.exportState().m.get("w")).toEqual(a.exportState().m.get("w"));
    expect(b.exportState().v.get("w")).toEqual(a.exportState().v.get("w"));
  });

  it("refuses a gradient scale that is not positive and finite", () => {
    const opt = new AdamW(new Map([["w", new Float32Array(2)]]));
    for (const bad of [0, -1, NaN, Infinity]) expect(() => opt.step(new Map([["w", new Float32Array(2)]]), 1e-3, bad)).toThrow(/gradient scale/);
  });

  it("export → import resumes identically", () => {
    const init = () =>
      new Map([
        ["a", new Float32Array([0.1, -0.2, 0.3])],
        ["b.bias", new Float32Array([1, 2])],
      ]);
    const grads = (k: number) =>
      new Map([
        ["a", new Float32Array([0.1 * k, -0.05, 0.2 / k])],
        ["b.bias", new Float32Array([-0.3, 0.01 * k])],
      ]);
    const pa = init();
    const a = new AdamW(pa, { weightDecay: 0.01 });
    a.step(grads(1), 1e-2);
    a.step(grads(2), 1e-2);
    const saved = a.exportState();
    const copy = {
      step: saved.step,
      m: new Map([...saved.m].map(([k, x]) => [k, x.slice()])),
      v: new Map([...saved.v].map(([k, x]) => [k, x.slice()])),
    };
    const pb = new Map([...pa].map(([k, x]) => [k, x.slice()]));
    const b = new AdamW(pb, { weightDecay: 0.01 });
    b.importState(copy);
    expect(b.stepCount).toBe(2);
    a.step(grads(3), 1e-2);
    b.step(grads(3), 1e-2);
    for (const k of pa.keys()) expect(pb.get(k)).toEqual(pa.get(k));
  });

  const good = () => ({
    step: 1,
    m: new Map([["a", new Float32Array(2)]]),
    v: new Map([["a", new Float32Array(2)]]),
  });
  it.each([
    ["missing m entry", { ...good(), m: new Map<string, Float32Array>() }],
    ["wrong v length", { ...good(), v: new Map([["a", new Float32Array(3)]]) }],
    ["extra name", { ...good(), m: new Map([...good().m, ["zz", new Float32Array(1)]]) }],
    ["negative step", { ...good(), step: -1 }],
  ])("importState rejects %s with E_CHECKPOINT", (_what, state) => {
    const opt = new AdamW(new Map([["a", new Float32Array(2)]]));
    expect(() => opt.importState(state)).toThrow(expect.objectContaining({ code: "E_CHECKPOINT" }));
  });
});
