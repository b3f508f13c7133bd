// Seeded xoshiro128** PRNG whose state round-trips through JSON, so a resumed run draws the same numbers.

import { SlimtuneError } from "./errors.js";

const TWO_32 = 4294967296;
const TWO_53 = 9007199254740992;

function splitmix32(x: number): [next: number, out: number] {
  const next = (x + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [next, (z ^ (z >>> 16)) >>> 0];
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new SlimtuneError("E_ARG", `seed ${seed} is not an integer; pass a whole number such as --seed 42`);
    }
    // Fold the high bits in so seeds above 2^32 (or negative) still give distinct streams.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_32) >>> 0, 0x27d4eb2d);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, out] = splitmix32(x);
      x = next;
      words.push(out);
    }
    this.setWords(words);
  }

  private setWords(w: number[]): void {
    this.s0 = w[0]! >>> 0;
    this.s1 = w[1]! >>> 0;
    this.s2 = w[2]! >>> 0;
    this.s3 = w[3]! >>> 0;
    // xoshiro's all-zero state is a fixed point.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextU32(): number {
    const s1 = this.s1;
    const r = Math.imul(s1, 5);
    const rot = (r << 7) | (r >>> 25);
    const result = Math.imul(rot, 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / TWO_53;
  }

  /** Uniform integer in [0, n), unbiased, for 1 <= n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
      throw new SlimtuneError("E_ARG", `Rng.int(${n}): expected an integer in [1, 2^32]`);
    }
    // Reject the top partial block of 2^32 so every residue is equally likely.
    const limit = TWO_32 - (TWO_32 % n);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }

  /** Standard normal via Box–Muller; the second value of the pair is discarded so state stays 4 words. */
  normal(): number {
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fill with N(0, std²), using both values of each Box–Muller pair. */
  fillNormal(out: Float32Array, std: number): void {
    const n = out.length;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const r = std * Math.sqrt(-2 * Math.log(1 - this.uniform()));
      const a = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(a);
      out[i + 1] = r * Math.sin(a);
    }
    if (i < n) out[i] = std * this.normal();
  }

  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  static fromState(s: number[]): Rng {
    const ok =
      Array.isArray(s) &&
      s.length === 4 &&
      s.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_32) &&
      s.some((w) => w !== 0);
    if (!ok) {
      throw new SlimtuneError(
        "E_CHECKPOINT",
        `RNG state ${JSON.stringify(s)} is not 4 unsigned 32-bit words (not all zero); the checkpoint is corrupt, start a fresh run`,
      );
    }
    const rng = new Rng(0);
    rng.setWords(s);
    return rng;
  }
}
