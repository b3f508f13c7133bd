// `slimtune run RECIPE`: a pipeline of stages from a YAML or JSON recipe (cli/pipeline/), each stage
// one slimtune command writing to <--out>/<stage>; finished stages are skipped on a re-run.

import { defineCommand } from "citty";
import { SlimtuneError, quote } from "../../core/errors.js";
import { requiredArg, runAction } from "../args.js";
import type { OutputContext } from "../output-context.js";
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
    recipe: { type: "positional", description: "The recipe file (.yaml, .yml or .json): vars, stages (each a command and its options; ${stages.NAME.out} reads an earlier stage's output, ${vars.NAME} a variable) and compare; see recipes/ in the repository", required: false },
    out: { type: "string", description: "Output root: each stage writes <out>/<stage>, and report.html compares them" },
    set: { type: "string", description: "Override recipe variables: NAME=VALUE, several separated by commas (e.g. --set steps=20,seed=1)" },
  },
  run: ({ args, data }) =>
    runAction(async () => {
      const file = typeof args._?.[0] === "string" ? args._[0] : undefined;
      if (!file) throw new SlimtuneError("E_ARG", "name the recipe file: slimtune run RECIPE.yaml --out FOLDER (see recipes/ in the repository)");
      const root = requiredArg("out", args.out);
      // Stages write their folders into --out as they finish: a folder of other files cannot be
      // replaced "once the result is complete" the way a single command's output is.
      if ((data as OutputContext | undefined)?.outputState === "foreign") throw new SlimtuneError("E_ARG", "--out holds files slimtune did not write, and a recipe writes its stages into it one by one; choose a new or empty folder", root);
      const recipe = await loadRecipe(file, parseSet(args.set));
      await runRecipe(recipe, root);
    }),
});
