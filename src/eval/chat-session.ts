// A multi-turn conversation with a model: the history is rendered with the model's chat template
// (or the plain default) and tokenized exactly as training tokenizes conversations, the reply is
// generated greedily (or sampled) and streamed, then joins the history. When the history outgrows
// the model's context the oldest exchanges are dropped (a system message stays).

import { SlimtuneError } from "../core/errors.js";
import type { ChatRenderer } from "../data/chat-template.js";
import type { ChatMessage } from "../data/instruct-records.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { conversationPrompt } from "./answers.js";
import type { GenerateOptions, GenerateResult, Generator } from "./generate.js";

export type ReplyOptions = GenerateOptions;

export class ChatSession {
  readonly history: ChatMessage[] = [];

  constructor(
    private readonly generator: Generator,
    private readonly renderer: ChatRenderer,
    private readonly tokenizer: TextTokenizer,
    private readonly system?: string,
  ) {
    this.reset();
  }

  /** Forgets the conversation (keeps the system message). */
  reset(): void {
    this.history.length = 0;
    if (this.system) this.history.push({ role: "system", content: this.system });
  }

  /** Adds the user's message and generates the assistant's reply, which joins the history. */
  async say(user: string, opts: ReplyOptions): Promise<GenerateResult> {
    this.history.push({ role: "user", content: user });
    return this.respond(opts);
  }

  /** Generates the assistant's reply to the history as it stands (it must end with a user or system message). */
  async respond(opts: ReplyOptions): Promise<GenerateResult> {
    const last = this.history[this.history.length - 1];
    if (!last || last.role === "assistant") throw new SlimtuneError("E_DATA", "the conversation must end with a user message for the assistant to answer");
    const context = this.generator.model.config.maxPositionEmbeddings;
    let ids = this.promptIds();
    while (ids.length + opts.maxNewTokens > context && this.dropOldestExchange()) ids = this.promptIds();
    if (ids.length >= context) {
      throw new SlimtuneError("E_ARG", `the last message alone takes ${ids.length} tokens, more than the model's context of ${context}; send a shorter one`);
    }
    const maxNewTokens = Math.min(opts.maxNewTokens, context - ids.length);
    const result = await this.generator.generate(ids, { ...opts, maxNewTokens });
    this.history.push({ role: "assistant", content: result.text.trim() });
    return result;
  }

  private promptIds(): number[] {
    return conversationPrompt(this.history, this.renderer, this.tokenizer);
  }

  /** Removes the oldest non-system message and the reply that followed it; false when only the last message is left. */
  private dropOldestExchange(): boolean {
    const first = this.history.findIndex((m) => m.role !== "system");
    if (first < 0 || first === this.history.length - 1) return false;
    const removed = this.history[first + 1]?.role === "assistant" && first + 1 < this.history.length - 1 ? 2 : 1;
    this.history.splice(first, removed);
    return true;
  }
}
