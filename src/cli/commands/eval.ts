// `slimtune eval`: perplexity on a text file, or accuracy on a labelled TSV, of a model folder
// (float or quantized) with an optional adapter.

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { tokenizeExamples } from "../../data/examples.js";
import { tokenizeFile } from "../../data/text-file.js";
import { readLabelledTsv } from "../../data/tsv.js";
import { GraphCache } from "../../engine/index.js";
import { accuracy } from "../../eval/classify.js";
import { klToReference } from "../../eval/kl.js";
import { perplexity } from "../../eval/perplexity.js";
import { SlimtuneError, quote } from "../../core/errors.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { HEAD } from "../../models/llama/cls-graphs.js";
import { type LoadedBase, loadBase } from "../../models/load.js";
import { findClassifierHead } from "../../formats/classifier-head.js";
import { intArg, peakRssMb, printJson, requiredArg, runAction } from "../args.js";
import { type Progress, createProgress } from "../progress.js";
import { scoringFor } from "../../methods/registry.js";
import { evalAnswerLoss, evalGenerate } from "../eval-generate.js";
import { headBitsFlag } from "../generation-model.js";

/** The --reference folder, checked to predict over the same tokens as the model. */
function loadReference(dir: string, modelDir: string): LoadedBase {
  const reference = loadBase(dir);
  const read = (d: string) => {
    const f = path.join(d, "tokenizer.json");
    return fs.existsSync(f) ? fs.readFileSync(f) : null;
  };
  const a = read(dir);
  const b = read(modelDir);
  if (a && b && !a.equals(b)) {
    throw new SlimtuneError("E_CONFIG", `--reference has another tokenizer.json than --model ${modelDir}; the two would score different token streams — pass the float model this one was made from`, path.join(dir, "tokenizer.json"));
  }
  return reference;
}

export default defineCommand({
  meta: { name: "eval", description: "Perplexity on a text file (--task lm) or accuracy on a labelled TSV (--task classify)" },
  args: {
    model: { type: "string", description: "Model folder: float Hugging Face folder or a quantized one" },
    adapter: { type: "string", description: "Adapter folder from finetune (PEFT LoRA or PEQA scales)" },
    reference: { type: "string", description: "lm: a reference model folder (the float original): adds KL(reference ‖ model), top-1 agreement and both perplexities" },
    task: { type: "string", description: "lm, classify or generate (answers to instruction/chat JSONL records, exact match)", default: "lm" },
    data: { type: "string", description: "UTF-8 text file (lm; a .jsonl of instruction records: the mean loss on their answers), text<TAB>label TSV with a header (classify), or JSONL records with answers (generate)" },
    "data-format": { type: "string", description: "generate: prompt-completion, alpaca or messages (default: from the first record's fields)" },
    "chat-template": { type: "string", description: "generate: a Jinja chat template file (default: the model's, else the plain default per format)" },
    "max-new-tokens": { type: "string", description: "generate: tokens per answer at most (default: 1.5 × the reference's tokens + 4)" },
    "max-examples": { type: "string", description: "generate: answer only the first N records" },
    "per-template": { type: "boolean", description: "generate: print exact match per `template` field (always in --json)" },
    show: { type: "string", description: "generate: example answers printed", default: "3" },
    "head-bits": { ...headBitsFlag, description: "generate: a quantized model's embedding and LM head, as generate --head-bits: 4, 8 or float (default 8)" },
    ctx: { type: "string", description: "lm: window length in tokens (a .jsonl --data: the --seq of its packed rows)", default: "256" },
    "max-tokens": { type: "string", description: "lm: score only the first N tokens" },
    batch: { type: "string", description: "Windows or examples per forward pass", default: "8" },
    "allow-long-context": { type: "boolean", description: "lm: allow --ctx past the model's max_position_embeddings (meaningful only with RoPE scaling)" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    json: { type: "boolean", description: "Print one JSON object on stdout" },
  },
  run: ({ args }) =>
    runAction(async () => {
      const modelDir = requiredArg("model", args.model);
      const dataFile = requiredArg("data", args.data);
      const batch = intArg("batch", args.batch, 8);
      const threads = args.threads ? intArg("threads", args.threads, 0) : undefined;
      if (args.task === "generate") {
        await evalGenerate(args, modelDir, dataFile, threads);
        return;
      }
      // Scoring runs the model's own head; a table chosen here would silently not be the one measured.
      if (args["head-bits"] !== undefined) throw new SlimtuneError("E_ARG", `--head-bits applies to --task generate only; --task ${quote(args.task)} scores with the model's own embedding and LM head`);
      const base = loadBase(modelDir);
      const scoring = scoringFor(base, args.adapter);
      const tokenizer = await loadTokenizer(modelDir);
      const cache = new GraphCache({ threads });
      let progress: Progress | null = null;
      const onProgress = (done: number, total: number) => {
        progress ??= createProgress(args.task === "lm" ? "eval windows" : "eval examples", total);
        progress.update(done);
      };
      if (args.task === "lm" && dataFile.toLowerCase().endsWith(".jsonl")) {
        await evalAnswerLoss(args, scoring, tokenizer, modelDir, dataFile, cache, batch);
        return;
      }
      if (args.task === "lm") {
        const ctx = intArg("ctx", args.ctx, 256, 2);
        const positions = scoring.config.maxPositionEmbeddings;
        if (ctx > positions && !args["allow-long-context"]) {
          throw new SlimtuneError("E_ARG", `--ctx ${ctx} is longer than the model's max_position_embeddings (${positions}); use --ctx ${positions} or less, or --allow-long-context if its RoPE scaling makes that meaningful`);
        }
        const maxTokens = args["max-tokens"] ? intArg("max-tokens", args["max-tokens"], 0, 2) : undefined;
        const tokens = tokenizeFile(dataFile, tokenizer, maxTokens);
        if (args.reference) {
          const reference = loadReference(args.reference, modelDir);
          const k = await klToReference(scoring, scoringFor(reference), { model: cache, reference: new GraphCache({ threads }) }, tokens, { ctx, onProgress });
          (progress as Progress | null)?.stop();
          if (args.json) {
            printJson({ model: modelDir, description: scoring.description, adapter: args.adapter ?? null, reference: args.reference, data: dataFile, ctx, ...k, tokens_per_s: k.tokens / k.seconds, peak_rss_mb: peakRssMb() });
          } else {
            process.stdout.write(
              `${scoring.description} vs ${args.reference}: KL ${k.meanKl.toFixed(5)} nats/token (p99 ${k.klP99.toFixed(4)}), top-1 agreement ${(100 * k.top1Agreement).toFixed(2)} %, ` +
                `perplexity ${k.perplexity.toFixed(3)} vs ${k.referencePerplexity.toFixed(3)} (Δ ${k.deltaPerplexity >= 0 ? "+" : ""}${k.deltaPerplexity.toFixed(3)}) over ${k.tokens} predicted tokens; ${k.seconds.toFixed(1)} s\n`,
            );
          }
          return;
        }
        const r = await perplexity(scoring, cache, tokens, { ctx, batch, onProgress });
        (progress as Progress | null)?.stop();
        if (!Number.isFinite(r.perplexity)) {
          throw new SlimtuneError("E_DIVERGED", `the model${args.adapter ? " with this adapter" : ""} gives a non-finite loss (${r.meanNll}); its weights hold Inf/NaN — the result of a diverged run; re-train with a lower --lr`, args.adapter ?? modelDir);
        }
        if (args.json) {
          printJson({ model: modelDir, description: scoring.description, adapter: args.adapter ?? null, data: dataFile, ctx, ...r, tokens_per_s: r.tokens / r.seconds, peak_rss_mb: peakRssMb() });
        } else {
          process.stdout.write(
            `${scoring.description}: perplexity ${r.perplexity.toFixed(3)} (mean NLL ${r.meanNll.toFixed(4)}) over ${r.tokens} predicted tokens ` +
              `in ${r.windows} windows of ${ctx}; ${r.seconds.toFixed(1)} s, ${(r.tokens / r.seconds).toFixed(0)} tokens/s\n`,
          );
        }
        return;
      }
      if (args.task !== "classify") throw new SlimtuneError("E_ARG", `unknown --task "${args.task}"; choose lm, classify or generate`);
      const head = findClassifierHead([args.adapter, modelDir].filter((d): d is string => Boolean(d)), scoring.config);
      if (!head) {
        throw new SlimtuneError("E_NOT_FOUND", "no classifier.json/classifier.safetensors beside the model or adapter; train one with finetune --task classify", args.adapter ?? modelDir);
      }
      const { examples, numLabels } = readLabelledTsv(dataFile);
      if (numLabels > head.numLabels) {
        throw new SlimtuneError("E_DATA", `data has labels up to ${numLabels - 1}, but the classifier in ${head.dir} has ${head.numLabels} labels`, dataFile);
      }
      const headFeed = { data: head.head, shape: [head.numLabels, scoring.config.hiddenSize] };
      const r = await accuracy(
        { ...scoring, numLabels: head.numLabels, weightFeeds: () => ({ ...scoring.weightFeeds(), [HEAD]: headFeed }) },
        cache,
        tokenizeExamples(examples, tokenizer),
        { batch, maxLen: head.maxLen, padId: head.padId, onProgress },
      );
      (progress as Progress | null)?.stop();
      if (args.json) printJson({ model: modelDir, description: scoring.description, adapter: args.adapter ?? null, data: dataFile, ...r, peak_rss_mb: peakRssMb() });
      else process.stdout.write(`${scoring.description}: accuracy ${(100 * r.accuracy).toFixed(2)} % on ${r.examples} examples (loss ${r.loss.toFixed(4)}); ${r.seconds.toFixed(1)} s, ${r.tokensPerSecond.toFixed(0)} tokens/s\n`);
    }),
});
