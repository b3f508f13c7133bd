import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PortableSha256, sha256 } from "../../src/core/sha256.js";
import { Rng } from "../../src/core/rng.js";

describe("sha256", () => {
  it("the portable hash equals Node's on the FIPS example and on chunked random bytes of every padding case", () => {
    expect(new PortableSha256().update("abc").hex()).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const rng = new Rng(3);
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 4099]) {
      const bytes = Uint8Array.from({ length: n }, () => rng.int(256));
      const cut = Math.floor(n / 3);
      const portable = new PortableSha256().update(bytes.subarray(0, cut)).update("x").update(bytes.subarray(cut)).hex();
      const node = createHash("sha256").update(bytes.subarray(0, cut)).update("x").update(bytes.subarray(cut)).digest("hex");
      expect(portable, `n=${n}`).toBe(node);
    }
  });

  it("sha256() uses Node's hash here and gives the same digest", () => {
    expect(sha256().update("abc").update(new Uint8Array([1, 2])).hex()).toBe(createHash("sha256").update("abc").update(new Uint8Array([1, 2])).digest("hex"));
  });
});
