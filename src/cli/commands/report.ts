// `slimtune report RUN… --out report.html`: runs that already exist (folders or .gguf files written by
// slimtune commands, each with its report.json) side by side, with a quality-vs-size plot.

import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { readComparisonRow, writeComparison } from "../../report/compare.js";
import { requiredArg, runAction } from "../args.js";

export default defineCommand({
  meta: { name: "report", description: "Compare existing runs (folders or .gguf files with a report.json) in one HTML page: a table and quality against size" },
  args: {
    runs: { type: "positional", description: "Run folders (or .gguf files) written by quantize, prune, finetune, qpruner, pruning-adapter or export", required: false },
    out: { type: "string", description: "The HTML file to write (a .json with the same rows is written beside it)" },
    title: { type: "string", description: "Title of the page", default: "slimtune runs compared" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const out = requiredArg("out", args.out);
      const runs = (args._ ?? []).map(String);
      if (runs.length === 0) throw new SlimtuneError("E_ARG", "name at least one run folder: slimtune report RUN… --out report.html");
      const rows = runs.map(readComparisonRow);
      await writeComparison(args.title ?? "slimtune runs compared", rows, out);
      process.stdout.write(`compared ${rows.length} runs → ${out}\n`);
    }),
});
