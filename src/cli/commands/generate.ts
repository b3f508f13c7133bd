// `slimtune generate`: text from a model folder (float, quantized, GGUF) with an optional adapter,
// streamed to stdout token by token, or one JSON object with --json.

import fs from "node:fs";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { Generator } from "../../eval/generate.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { floatArg, intArg, printJson, runAction } from "../args.js";
import { readConversationFile } from "../../data/instruct-records.js";
import { conversationPrompt } from "../../eval/answers.js";
import { chatRendererFor } from "../../data/chat-template.js";
import { headBitsArg, headBitsFlag, loadGenerationModel } from "../generation-model.js";

function readPrompt(prompt: string | undefined, file: string | undefined, ids: string | undefined, chat: string | undefined): string | number[] {
  if ([prompt, file, ids, chat].filter((x) => x !== undefined).length !== 1) {
    throw new SlimtuneError("E_ARG", "give exactly one of --prompt TEXT, --prompt-file FILE, --prompt-ids 1,2,3 or --chat MESSAGES.json");
  }
  if (chat !== undefined) return [];
  if (prompt !== undefined) return prompt;
  if (ids !== undefined) {
    const list = ids.split(",").map((x) => Number(x.trim()));
    if (list.some((x) => !Number.isInteger(x) || x < 0)) throw new SlimtuneError("E_ARG", `--prompt-ids "${ids}" must be comma-separated token ids, e.g. --prompt-ids 572,286,1612`);
    return list;
  }
  if (!fs.existsSync(file!)) throw new SlimtuneError("E_NOT_FOUND", "prompt file not found", file);
  return fs.readFileSync(file!, "utf8");
}

export default defineCommand({
  meta: { name: "generate", description: "Generate text with a key/value cache (greedy with --temperature 0, the default)" },
  args: {
    model: { type: "string", description: "Model folder (float or quantized) or a .gguf file" },
    adapter: { type: "string", description: "Adapter folder from finetune (LoRA, QLoRA or PEQA)" },
    prompt: { type: "string", description: "Prompt text (tokenized as transformers does: BOS only if the tokenizer config adds one)" },
    "prompt-file": { type: "string", description: "Read the prompt from a UTF-8 file" },
    "prompt-ids": { type: "string", description: "The prompt as token ids, comma-separated (no tokenizer involved)" },
    chat: { type: "string", description: "Answer one turn: a JSON file {\"messages\": [{\"role\", \"content\"}, …]} ending with the user's message, rendered with the chat template" },
    "chat-template": { type: "string", description: "--chat: a Jinja chat template file (default: the model's, else the plain default)" },
    "max-new-tokens": { type: "string", description: "Tokens to generate at most", default: "64" },
    temperature: { type: "string", description: "0 = greedy; > 0 samples", default: "0" },
    "top-k": { type: "string", description: "Sample from the k most likely tokens (0 = all)", default: "50" },
    "top-p": { type: "string", description: "Sample from the smallest set reaching probability p", default: "1" },
    "repetition-penalty": { type: "string", description: "> 1 discourages repeating context tokens", default: "1" },
    seed: { type: "string", description: "Sampling seed", default: "0" },
    "ignore-eos": { type: "boolean", description: "Keep generating past end-of-sequence tokens (benchmarks)" },
    stop: { type: "string", description: "Stop before this string (repeat the flag for several)" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    "head-bits": headBitsFlag,
    json: { type: "boolean", description: "Print one JSON object (prompt_ids, ids, text, prefill/decode tokens per second)" },
  },
  run: ({ args, rawArgs }) =>
    runAction(async () => {
      if (!args.model) throw new SlimtuneError("E_ARG", "--model is required; see slimtune generate --help");
      let prompt = readPrompt(args.prompt, args["prompt-file"], args["prompt-ids"], args.chat);
      const maxNewTokens = Number(args["max-new-tokens"]);
      if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) {
        throw new SlimtuneError("E_ARG", `--max-new-tokens "${args["max-new-tokens"]}" must be a positive integer, e.g. --max-new-tokens 64`);
      }
      const temperature = floatArg("temperature", args.temperature, 0);
      const topK = intArg("top-k", args["top-k"], 50, 0);
      const topP = floatArg("top-p", args["top-p"], 1);
      if (topP <= 0 || topP > 1) throw new SlimtuneError("E_ARG", `--top-p "${args["top-p"]}" must lie in (0, 1]`);
      const repetitionPenalty = floatArg("repetition-penalty", args["repetition-penalty"], 1);
      if (repetitionPenalty <= 0) throw new SlimtuneError("E_ARG", `--repetition-penalty "${args["repetition-penalty"]}" must be > 0`);
      const seed = intArg("seed", args.seed, 0, 0);
      const threads = args.threads ? intArg("threads", args.threads, 0) : undefined;
      const headBits = headBitsArg(args["head-bits"], args.adapter);
      const stop = stopStrings(rawArgs);

      const { model, head } = loadGenerationModel(args.model, args.adapter, headBits);
      const tokenizer = await loadTokenizer(args.model);
      if (args.chat) prompt = conversationPrompt(readConversationFile(args.chat), chatRendererFor(args.model, args["chat-template"]).renderer, tokenizer);
      const generator = await Generator.create(model, tokenizer, threads ? { threads } : {}, { releaseHostCodes: true }); // the model serves this generator only
      const result = await generator.generate(prompt, {
        maxNewTokens,
        temperature,
        topK,
        topP,
        repetitionPenalty,
        seed,
        stop,
        ...(args["ignore-eos"] ? { eosTokenIds: [] } : {}),
        ...(args.json ? {} : { onText: (delta: string) => process.stdout.write(delta) }),
      });
      await generator.release();
      if (args.json) {
        printJson({
          model: args.model,
          adapter: args.adapter ?? null,
          prompt_ids: result.promptIds,
          ids: result.ids,
          text: result.text,
          stop_reason: result.stopReason,
          prefill_tokens_per_s: result.prefillTokensPerS,
          decode_tokens_per_s: result.decodeTokensPerS,
          prefill_cpu_s: result.prefillCpuSeconds,
          decode_cpu_s: result.decodeCpuSeconds,
          head,
        });
        return;
      }
      process.stdout.write("\n");
      process.stderr.write(
        `${model.description}, embedding/LM head ${head}: ${result.promptIds.length} prompt tokens at ${result.prefillTokensPerS.toFixed(0)} tokens/s, ` +
          `${result.ids.length} new tokens at ${result.decodeTokensPerS.toFixed(1)} tokens/s (${result.stopReason})\n`,
      );
    }),
});

/** Every --stop value (citty keeps only the last of a repeated flag). */
function stopStrings(rawArgs: string[]): string[] {
  const out: string[] = [];
  rawArgs.forEach((a, i) => {
    if (a === "--stop" && rawArgs[i + 1] !== undefined) out.push(rawArgs[i + 1]!);
    else if (a.startsWith("--stop=")) out.push(a.slice("--stop=".length));
  });
  return out;
}
