// `slimtune eval`: perplexity of a model folder on a text file.

import { defineCommand } from "citty";
import { GraphCache } from "../../engine/index.js";
import { perplexity } from "../../eval/perplexity.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { LlamaModel } from "../../models/llama/model.js";
import { frozenScoring } from "../../models/llama/scoring.js";
import { tokenizeFile } from "../../data/text-file.js";
import { intArg, printJson, requiredArg, runAction } from "../args.js";
import { type Progress, createProgress } from "../progress.js";

export default defineCommand({
  meta: { name: "eval", description: "Perplexity of a model on a text file (non-overlapping windows of --ctx tokens)" },
  args: {
    model: { type: "string", description: "Hugging Face model folder (config.json, model.safetensors, tokenizer.json)" },
    data: { type: "string", description: "UTF-8 text file to score" },
    ctx: { type: "string", description: "Window length in tokens", default: "256" },
    "max-tokens": { type: "string", description: "Score only the first N tokens" },
    batch: { type: "string", description: "Windows per forward pass", default: "8" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const modelDir = requiredArg("model", args.model);
      const dataFile = requiredArg("data", args.data);
      const ctx = intArg("ctx", args.ctx, 256, 2);
      const maxTokens = args["max-tokens"] ? intArg("max-tokens", args["max-tokens"], 0, 2) : undefined;
      const batch = intArg("batch", args.batch, 8);
      const threads = args.threads ? intArg("threads", args.threads, 0) : undefined;
      const model = LlamaModel.load(modelDir);
      const tokenizer = await loadTokenizer(modelDir);
      const tokens = tokenizeFile(dataFile, tokenizer, maxTokens);
      let progress: Progress | null = null;
      const result = await perplexity(frozenScoring(model), new GraphCache({ threads }), tokens, {
        ctx,
        batch,
        onProgress: (done, total) => {
          progress ??= createProgress("eval windows", total);
          progress.update(done);
        },
      });
      (progress as Progress | null)?.stop();
      if (args.json) {
        printJson({ model: modelDir, data: dataFile, ctx, ...result, tokens_per_s: result.tokens / result.seconds });
      } else {
        process.stdout.write(
          `perplexity ${result.perplexity.toFixed(3)} (mean NLL ${result.meanNll.toFixed(4)}) over ${result.tokens} predicted tokens ` +
            `in ${result.windows} windows of ${ctx}; ${result.seconds.toFixed(1)} s, ${(result.tokens / result.seconds).toFixed(0)} tokens/s\n`,
        );
      }
    }),
});
