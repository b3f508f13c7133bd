// The layering of src/ (docs/architecture.md, .dependency-cruiser.cjs): the real tree has no
// wrong-way import and no circle, and the rules do catch a planted wrong-way import and a circle.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { scratchDir } from "../helpers/paths.js";

const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
const DEPCRUISE = path.join(ROOT, "node_modules", ".bin", "depcruise");

function cruise(cwd: string): { code: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, ["src", "--config", path.join(ROOT, ".dependency-cruiser.cjs"), "--output-type", "err"], { cwd, encoding: "utf8" });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A throwaway tree with the given files (path → source) and the project's tsconfig. */
function tree(files: Record<string, string>): string {
  const dir = scratchDir("layers");
  fs.copyFileSync(path.join(ROOT, "tsconfig.json"), path.join(dir, "tsconfig.json"));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

describe("layering", () => {
  it("src/ has no wrong-way import and no circle", () => {
    const r = cruise(ROOT);
    expect(r.out).toContain("no dependency violations found");
    expect(r.code).toBe(0);
  });

  it("a lower folder importing a higher one fails, naming the rule and both files", () => {
    const dir = tree({
      "src/quant/spec.ts": 'import { x } from "../methods/registry.js";\nexport const y = x;\n',
      "src/methods/registry.ts": "export const x = 1;\n",
      "src/methods/lora.ts": 'import { y } from "../quant/spec.js";\nexport const z = y;\n',
    });
    const r = cruise(dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("layer-quant: src/quant/spec.ts → src/methods/registry.ts");
    expect(r.out).not.toContain("src/methods/lora.ts → src/quant/spec.ts");
  });

  it("two files importing each other fail; the engine/ops circle is allowed by name", () => {
    const dir = tree({
      "src/formats/a.ts": 'import { b } from "./b.js";\nexport const a = () => b();\n',
      "src/formats/b.ts": 'import { a } from "./a.js";\nexport const b = () => a();\n',
      "src/engine/ops/shape.ts": 'import { r } from "./reduce.js";\nexport const s = () => r();\n',
      "src/engine/ops/reduce.ts": 'import { s } from "./shape.js";\nexport const r = () => s();\n',
    });
    const r = cruise(dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/no-circular: src\/formats\/a\.ts/);
    expect(r.out).not.toMatch(/no-circular: src\/engine\/ops/);
  });

  it("a folder that is not a layer fails", () => {
    const dir = tree({ "src/models/m.ts": 'import { u } from "../util/u.js";\nexport const m = u;\n', "src/util/u.ts": "export const u = 1;\n" });
    const r = cruise(dir);
    expect(r.out).toContain("no-unknown-folder");
  });
});
