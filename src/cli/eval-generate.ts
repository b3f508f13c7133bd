// `slimtune eval` on instruction/chat records: --task generate scores greedy answers by normalised
// exact match overall and per `template`, with a few answers shown (--json gives every answer); a
// .jsonl --data without --task gives the mean loss on the answer tokens.

import { SlimtuneError } from "../core/errors.js";
import { readInstructFile } from "../data/instruct-records.js";
import { answerPrompt, exactMatch } from "../eval/answers.js";
import { Generator } from "../eval/generate.js";
import { loadTokenizer } from "../formats/tokenizer.js";
import { chatRendererFor } from "../data/chat-template.js";
import { tokenizeRecords } from "../data/sft-examples.js";
import { type GraphCache, Graph } from "../engine/index.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { buildSftScoreGraph } from "../models/llama/sft-graphs.js";
import type { ScoringModel } from "../models/scoring.js";
import { answerLoss } from "../train/sft-task.js";
import { intArg, peakRssMb, printJson } from "./args.js";
import { type Progress, createProgress } from "./progress.js";
import { dataFormatArg } from "./sft-args.js";
import { headBitsArg, loadGenerationModel } from "./generation-model.js";

export interface EvalGenerateFlags {
  adapter?: string;
  "data-format"?: string;
  "chat-template"?: string;
  "max-new-tokens"?: string;
  "max-examples"?: string;
  "per-template"?: boolean;
  show?: string;
  "head-bits"?: string;
  json?: boolean;
}

export async function evalGenerate(args: EvalGenerateFlags, modelDir: string, dataFile: string, threads?: number): Promise<void> {
  const format = dataFormatArg(args["data-format"]);
  const maxNewTokens = args["max-new-tokens"] ? intArg("max-new-tokens", args["max-new-tokens"], 1) : undefined;
  const limit = args["max-examples"] ? intArg("max-examples", args["max-examples"], 1) : undefined;
  const show = intArg("show", args.show, 3, 0);
  const headBits = headBitsArg(args["head-bits"], args.adapter);
  const { records, format: found } = readInstructFile(dataFile, format ? { format } : {});
  if (found === "text") throw new SlimtuneError("E_DATA", `has "text" records, which hold no prompt to answer; --task generate needs prompt/completion, Alpaca or messages records`, dataFile);
  const { renderer, source } = chatRendererFor(modelDir, args["chat-template"]);
  const tokenizer = await loadTokenizer(modelDir);
  const prompts = records.slice(0, limit).map((r) => {
    try {
      return answerPrompt(r, renderer, tokenizer);
    } catch (err) {
      if (err instanceof SlimtuneError) throw new SlimtuneError(err.code, `line ${r.line}: ${err.message}`, dataFile);
      throw err;
    }
  });
  const { model, head } = loadGenerationModel(modelDir, args.adapter, headBits);
  const generator = await Generator.create(model, tokenizer, threads ? { threads } : {}, { releaseHostCodes: true }); // the model serves this generator only
  let progress: Progress | null = null;
  const report = await exactMatch(generator, prompts, {
    ...(maxNewTokens ? { maxNewTokens } : {}),
    onProgress: args.json
      ? undefined
      : (done, total) => {
          progress ??= createProgress("answers", total);
          progress.update(done);
        },
  });
  (progress as Progress | null)?.stop();
  await generator.release();
  if (args.json) {
    printJson({ model: modelDir, adapter: args.adapter ?? null, data: dataFile, format: found, chat_template: source, head, exact_match: report.exactMatch, examples: report.examples, per_template: report.perTemplate, answers: report.answers, seconds: report.seconds, peak_rss_mb: peakRssMb() });
    return;
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const lines = [`${model.description}, embedding/LM head ${head}: exact match ${pct(report.exactMatch)} on ${report.examples} ${found} records (greedy; chat template: ${source}); ${report.seconds.toFixed(1)} s`];
  const templates = Object.entries(report.perTemplate).sort(([a], [b]) => a.localeCompare(b));
  if (templates.length > 0 && args["per-template"]) {
    const width = Math.max(...templates.map(([t]) => t.length));
    for (const [t, r] of templates) lines.push(`  ${t.padEnd(width)}  ${String(r.examples).padStart(4)}  ${pct(r.exactMatch)}`);
  } else if (templates.length > 0) {
    lines.push(`  (${templates.length} templates; --per-template lists each, --json gives every answer)`);
  }
  for (const a of report.answers.slice(0, show)) {
    lines.push(`line ${a.line}${a.template ? ` [${a.template}]` : ""}: ${a.match ? "✓" : "✗"} answered ${JSON.stringify(a.answer.slice(0, 120))}, reference ${JSON.stringify(a.reference.slice(0, 120))}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** `eval --data dev.jsonl`: the mean loss on the records' answer tokens (what finetune --task sft reports as held-out loss). */
export async function evalAnswerLoss(
  args: EvalGenerateFlags & { ctx?: string },
  scoring: ScoringModel & { description: string },
  tokenizer: TextTokenizer,
  modelDir: string,
  dataFile: string,
  cache: GraphCache,
  batch: number,
): Promise<void> {
  const seq = intArg("ctx", args.ctx, 256, 2);
  const format = dataFormatArg(args["data-format"]);
  const { renderer, source } = chatRendererFor(modelDir, args["chat-template"]);
  const { records, format: found } = readInstructFile(dataFile, format ? { format } : {});
  const { examples, counts } = tokenizeRecords(records, renderer, tokenizer, { seq, trainOnPrompt: false, tooLong: "cut-prompt" }, dataFile);
  const started = performance.now();
  const r = await answerLoss(
    { key: scoring.cacheKey, build: () => buildSftScoreGraph(scoring.config, scoring.params(new Graph()), batch, seq) },
    cache,
    scoring.weightFeeds(),
    examples,
    { batch, seq, pack: true, padId: scoring.config.eosTokenId ?? 0 },
  );
  const seconds = (performance.now() - started) / 1000;
  if (args.json) {
    printJson({ model: modelDir, adapter: args.adapter ?? null, data: dataFile, format: found, chat_template: source, answer_loss: r.loss, answer_perplexity: Math.exp(r.loss), answer_tokens: r.tokens, counts, seconds, peak_rss_mb: peakRssMb() });
    return;
  }
  process.stdout.write(
    `${scoring.description}: answer loss ${r.loss.toFixed(4)} (perplexity ${Math.exp(r.loss).toFixed(2)}) over ${r.tokens} answer tokens of ${counts.examples} ${found} examples ` +
      `(${counts.promptCut} prompts cut, ${counts.dropped} dropped at --ctx ${seq}; chat template: ${source}); ${seconds.toFixed(1)} s\n`,
  );
}
