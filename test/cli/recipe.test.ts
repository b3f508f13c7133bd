// Recipes (cli/pipeline/recipe.ts): each stage's options are checked against its command's own flag
// table, and every mistake is E_ARG naming the recipe file and the line; references resolve to earlier
// stages' outputs, variables keep their types, relative paths are read from the recipe's folder.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadRecipe } from "../../src/cli/pipeline/recipe.js";
import { inputFiles, isComplete, planStages } from "../../src/cli/pipeline/runner.js";
import { SlimtuneError } from "../../src/core/errors.js";
import { scratchDir } from "../helpers/paths.js";

const dir = scratchDir("recipe");
let n = 0;
function recipeFile(text: string, ext = "yaml"): string {
  const file = path.join(dir, `r${n++}.${ext}`);
  fs.writeFileSync(file, text);
  return file;
}

async function failure(text: string, ext = "yaml"): Promise<{ message: string; file: string | undefined }> {
  const file = recipeFile(text, ext);
  try {
    await loadRecipe(file);
  } catch (e) {
    expect(e).toBeInstanceOf(SlimtuneError);
    expect((e as SlimtuneError).code).toBe("E_ARG");
    return { message: (e as SlimtuneError).message, file: (e as SlimtuneError).file };
  }
  throw new Error("the recipe was accepted");
}

const GOOD = `vars:
  steps: 5
stages:
  q4:
    command: quantize
    options: { model: models/m, bits: 4 }
  tuned:
    command: finetune
    options:
      model: "\${stages.q4.out}"
      method: peqa
      data: data/train.txt
      steps: "\${vars.steps}"
      pack: false
  score:
    command: eval
    options: { model: "\${stages.q4.out}", adapter: "\${stages.tuned.out}", data: /abs/test.txt }
  gguf:
    command: export
    options: { model: "\${stages.q4.out}", adapter: "\${stages.tuned.out}", format: gguf }
`;

describe("a valid recipe", () => {
  it("resolves references, variables (typed), relative paths, and plans each stage's command line", async () => {
    const recipe = await loadRecipe(recipeFile(GOOD), { steps: "7" });
    expect(recipe.vars.steps).toBe(7);
    expect(recipe.stages.map((s) => [s.name, s.needs])).toEqual([["q4", []], ["tuned", ["q4"]], ["score", ["q4", "tuned"]], ["gguf", ["q4", "tuned"]]]);
    const plan = planStages(recipe, "/runs/x");
    expect(plan[0]!.argv).toEqual(["quantize", "--model", path.join(dir, "models/m"), "--bits", "4", "--out", "/runs/x/q4", "--json"]);
    expect(plan[1]!.argv).toEqual(["finetune", "--model", "/runs/x/q4", "--method", "peqa", "--data", path.join(dir, "data/train.txt"), "--steps", "7", "--no-pack", "--out", "/runs/x/tuned", "--json"]);
    expect(plan[2]!.kind).toBe("eval");
    expect(plan[2]!.argv).toEqual(["eval", "--model", "/runs/x/q4", "--adapter", "/runs/x/tuned", "--data", "/abs/test.txt", "--json"]);
    expect(plan[3]!.out).toBe("/runs/x/gguf/model.gguf"); // a GGUF export writes one file
  });

  it("reads the same recipe written as JSON", async () => {
    const json = JSON.stringify({ stages: { q4: { command: "quantize", options: { model: "m", bits: 3 } } } }, null, 2);
    const recipe = await loadRecipe(recipeFile(json, "json"));
    expect(recipe.stages[0]!.options).toEqual({ model: path.join(dir, "m"), bits: 3 });
  });
});

describe("mistakes are E_ARG with the file and line", () => {
  it("an unknown option, with the command's closest flag", async () => {
    const f = await failure(GOOD.replace("method: peqa", "metod: peqa"));
    expect(f.message).toMatch(/: line 11: stage tuned: finetune has no option "metod"; did you mean method\?/);
    expect(f.file).toMatch(/r\d+\.yaml$/);
  });

  it("a value for a switch, and a switch where a value belongs", async () => {
    expect((await failure(GOOD.replace("pack: false", "pack: 3"))).message).toMatch(/: line 14: stage tuned: pack is a switch of finetune; write true or false/);
    expect((await failure(GOOD.replace("bits: 4", "bits: true"))).message).toMatch(/: line 6: stage q4: bits takes a value/);
  });

  it("a wrong type and an unknown key in the recipe's own structure", async () => {
    expect((await failure(GOOD.replace("bits: 4 }", "bits: [4] }"))).message).toMatch(/: line 6: stages\.q4\.options\.bits: /);
    expect((await failure(GOOD.replace("  q4:\n    command: quantize", "  q4:\n    comand: x\n    command: quantize"))).message).toMatch(/: line 5: unknown key "comand" in stages\.q4; a stage has command, options and description/);
  });

  it("a reference to a later stage, an unknown variable, a flag the runner owns, a command that is no stage", async () => {
    expect((await failure(GOOD.replace("options: { model: models/m, bits: 4 }", 'options: { model: "${stages.tuned.out}", bits: 4 }'))).message).toMatch(/: line 6: .*"tuned" is not a stage before this one/);
    expect((await failure(GOOD.replace("${vars.steps}", "${vars.stpes}"))).message).toMatch(/: line 13: .*no variable "stpes" in vars \(steps\)/);
    expect((await failure(GOOD.replace("bits: 4 }", "bits: 4, out: x }"))).message).toMatch(/: line 6: stage q4: out is set by slimtune run/);
    expect((await failure(GOOD.replace("command: quantize", "command: quantise"))).message).toMatch(/: line 5: stage q4: command "quantise" cannot be a stage; did you mean quantize\?/);
  });

  it("broken YAML names its line", async () => {
    expect((await failure("stages:\n  q4: [\n")).message).toMatch(/: line \d: not valid YAML\/JSON/);
  });

  it("--set of a variable the recipe does not have", async () => {
    await expect(loadRecipe(recipeFile(GOOD), { stpes: "1" })).rejects.toThrow(/--set "stpes": the recipe has no such variable \(it has steps\)/);
  });
});

describe("the shipped recipes and the README's example", () => {
  const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
  const PATHS = ["model", "adapter", "data", "eval-data", "reference", "chat-template"];

  it("every recipe in recipes/ validates, and every input path it names exists", async () => {
    const files = fs.readdirSync(path.join(ROOT, "recipes")).filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(files.sort()).toEqual(["ag-news.yaml", "demo.yaml", "peqa-instruct-gguf.yaml", "qpruner-budget-gguf.yaml"]);
    for (const f of files) {
      const recipe = await loadRecipe(path.join(ROOT, "recipes", f));
      for (const s of recipe.stages) {
        for (const k of PATHS) {
          const v = s.options[k];
          if (typeof v === "string" && !v.includes("\u0000")) expect(fs.existsSync(v), `${f}: stage ${s.name} ${k} ${v}`).toBe(true);
        }
      }
    }
  });

  it("the README's recipe is valid as written", async () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = readme.slice(readme.indexOf("### Recipes and reports")).match(/```yaml\n([\s\S]*?)```/)![1]!;
    const file = path.join(scratchDir("readme-recipe"), "recipes", "example.yaml");
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, block);
    const recipe = await loadRecipe(file, { steps: "5" });
    expect(recipe.stages.map((s) => s.command)).toEqual(["quantize", "finetune", "eval"]);
    expect(recipe.compare).toEqual([{ stage: "peqa", eval: "peqa-test", label: "PEQA 4-bit" }]);
  });
});

describe("a stage is complete", () => {
  it("only with its marker, its report and the same command line as the run that wrote it", async () => {
    const root = scratchDir("recipe-root");
    const [q4] = planStages(await loadRecipe(recipeFile(GOOD)), root);
    const state = path.join(root, ".stages", "q4.json");
    fs.mkdirSync(path.dirname(state), { recursive: true });
    fs.mkdirSync(q4!.out);
    fs.writeFileSync(state, JSON.stringify({ argv: q4!.argv, inputs: inputFiles(q4!), finished: "now" }));
    expect(isComplete(root, q4!)).toBe(false); // nothing written yet
    fs.writeFileSync(path.join(q4!.out, ".slimtune-output"), "{}");
    expect(isComplete(root, q4!)).toBe(false); // killed before its report
    fs.writeFileSync(path.join(q4!.out, "report.json"), "{}");
    expect(isComplete(root, q4!)).toBe(true);
    fs.writeFileSync(state, JSON.stringify({ argv: q4!.argv, inputs: inputFiles(q4!), finished: null }));
    expect(isComplete(root, q4!)).toBe(false); // started again and not finished
    fs.writeFileSync(state, JSON.stringify({ argv: q4!.argv, inputs: inputFiles(q4!), finished: "now" }));
    const [edited] = planStages(await loadRecipe(recipeFile(GOOD.replace("bits: 4", "bits: 3"))), root);
    expect(isComplete(root, edited!)).toBe(false); // the recipe changed this stage's options: it runs again
  });

  it("not when an input file it reads has changed since", async () => {
    const root = scratchDir("recipe-inputs");
    const data = path.join(root, "train.txt");
    fs.writeFileSync(data, "one");
    const [stage] = planStages(await loadRecipe(recipeFile(`stages:\n  t:\n    command: finetune\n    options: { model: m, data: ${data} }\n`)), root);
    fs.mkdirSync(path.join(root, ".stages"));
    fs.mkdirSync(stage!.out);
    fs.writeFileSync(path.join(stage!.out, ".slimtune-output"), "{}");
    fs.writeFileSync(path.join(stage!.out, "report.json"), "{}");
    fs.writeFileSync(path.join(root, ".stages", "t.json"), JSON.stringify({ argv: stage!.argv, inputs: inputFiles(stage!), finished: "now" }));
    expect(isComplete(root, stage!)).toBe(true);
    fs.writeFileSync(data, "one and two");
    expect(isComplete(root, stage!)).toBe(false);
  });
});
