// `slimtune chat`: a multi-turn conversation in the terminal with a model (folder, quantized folder
// or GGUF file, with an optional adapter), rendered with its chat template, replies streamed.
// /reset starts over, /exit (or end of input) quits. Reads lines from a pipe as well as a terminal.

import readline from "node:readline";
import { defineCommand } from "citty";
import { SlimtuneError } from "../../core/errors.js";
import { ChatSession } from "../../eval/chat-session.js";
import { Generator } from "../../eval/generate.js";
import { loadTokenizer } from "../../formats/tokenizer.js";
import { chatRendererFor } from "../../data/chat-template.js";
import { floatArg, intArg, runAction } from "../args.js";
import { headBitsArg, headBitsFlag, loadGenerationModel } from "../generation-model.js";

export default defineCommand({
  meta: { name: "chat", description: "Chat with a model in the terminal, using its chat template (/reset, /exit)" },
  args: {
    model: { type: "string", description: "Model folder (float or quantized) or a .gguf file" },
    adapter: { type: "string", description: "Adapter folder from finetune (LoRA, QLoRA or PEQA)" },
    system: { type: "string", description: "A system message that opens the conversation" },
    "chat-template": { type: "string", description: "A Jinja chat template file (default: the model's, else the plain default)" },
    "max-new-tokens": { type: "string", description: "Tokens per reply at most", default: "256" },
    temperature: { type: "string", description: "0 = greedy; > 0 samples", default: "0" },
    "top-k": { type: "string", description: "Sample from the k most likely tokens (0 = all)", default: "50" },
    "top-p": { type: "string", description: "Sample from the smallest set reaching probability p", default: "1" },
    seed: { type: "string", description: "Sampling seed", default: "0" },
    threads: { type: "string", description: "ONNX Runtime threads (default: all cores)" },
    "head-bits": headBitsFlag,
  },
  run: ({ args }) =>
    runAction(async () => {
      if (!args.model) throw new SlimtuneError("E_ARG", "--model is required; see slimtune chat --help");
      const maxNewTokens = intArg("max-new-tokens", args["max-new-tokens"], 256);
      const sampling = { temperature: floatArg("temperature", args.temperature, 0), topK: intArg("top-k", args["top-k"], 50, 0), topP: floatArg("top-p", args["top-p"], 1) };
      if (sampling.topP <= 0 || sampling.topP > 1) throw new SlimtuneError("E_ARG", `--top-p "${args["top-p"]}" must lie in (0, 1]`);
      const seed = intArg("seed", args.seed, 0, 0);
      const threads = args.threads ? intArg("threads", args.threads, 0) : undefined;
      const headBits = headBitsArg(args["head-bits"], args.adapter);
      const { renderer, source } = chatRendererFor(args.model, args["chat-template"]);
      const tokenizer = await loadTokenizer(args.model);
      const { model, head } = loadGenerationModel(args.model, args.adapter, headBits);
      const generator = await Generator.create(model, tokenizer, threads ? { threads } : {}, { releaseHostCodes: true }); // the model serves this generator only
      const session = new ChatSession(generator, renderer, tokenizer, args.system);
      const interactive = Boolean(process.stdin.isTTY);
      process.stderr.write(`${model.description}, embedding/LM head ${head}; chat template: ${source}. /reset starts over, /exit quits.\n`);
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: interactive });
      const ask = () => interactive && process.stderr.write("you> ");
      ask();
      let turn = 0;
      for await (const line of rl) {
        const text = line.trim();
        if (text === "/exit" || text === "/quit") break;
        if (text === "/reset") {
          session.reset();
          process.stderr.write("(conversation cleared)\n");
        } else if (text !== "") {
          process.stdout.write(interactive ? "model> " : "");
          await session.say(text, { maxNewTokens, ...sampling, seed: seed + turn++, onText: (delta) => process.stdout.write(delta) });
          process.stdout.write("\n");
        }
        ask();
      }
      rl.close();
      await generator.release();
    }),
});
