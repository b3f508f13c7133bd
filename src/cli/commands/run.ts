// `slimtune run RECIPE`: a pipeline of stages from a YAML or JSON recipe (cli/pipeline/), each stage
// one slimtune command writing to <--out>/<stage>; finished stages are skipped on a re-run.

import { defineCommand } from "citty";
import { SlimtuneError, quote } from "../../core/errors.js";
import { requiredArg, runAction } from "../args.js";
import { loadRecipe } from "../pipeline/recipe.js";
import { runRecipe } from "../pipeline/runner.js";

function parseSet(value: string | undefined): Record<string, string> {
  if (!value) return {};
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new SlimtuneError("E_ARG", `--set ${quote(part)}: write NAME=VALUE (several: --set steps=20,seed=1)`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

export default defineCommand({
  meta: { name: "run", description: "Run a recipe (YAML or JSON): named stages of quantize, prune, finetune, eval, export, pruning-adapter and qpruner, each skipped when already complete, then a comparison report" },
  args: {
    recipe: { type: "positional", description: "The recipe file (.yaml, .yml or .json); see recipes/ in the repository", required: false },
    out: { type: "string", description: "Output root: each stage writes <out>/<stage>, and report.html compares them" },
    set: { type: "string", description: "Override recipe variables: NAME=VALUE, several separated by commas (e.g. --set steps=20,seed=1)" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const file = requiredArg("recipe (the recipe file, before the flags)", typeof args._?.[0] === "string" ? args._[0] : undefined);
      const root = requiredArg("out", args.out);
      const recipe = await loadRecipe(file, parseSet(args.set));
      await runRecipe(recipe, root);
    }),
});
