// Renders instruction and chat records into text segments, each marked as prompt (no loss) or
// answer (loss). Chat records go through the model's `chat_template` (tokenizer_config.json, or
// --chat-template FILE) with @huggingface/jinja, the renderer transformers.js uses, given the same
// variables transformers gives it (messages, add_generation_prompt, bos_token, eos_token, …).
//
// Where each assistant turn starts and ends is found by rendering prefixes of the conversation: the
// answer of turn i is render(messages[..i]) minus render(messages[..i-1], add_generation_prompt),
// so any template that renders a conversation as the concatenation of its turns works, with no
// markers inside the template. One that rewrites earlier turns is refused by name.
//
// Without a template each format has a documented default (docs/instruction-tuning.md):
//   text               the text, all of it trained
//   prompt-completion  prompt + completion, concatenated as they are (also with a template)
//   alpaca             the Stanford Alpaca prompt ("Below is an instruction…### Response:\n") + output;
//                      with a model template: one user turn (instruction, a blank line, input) and
//                      one assistant turn
//   messages           "System: …\n", "User: …\n", "Assistant: " + answer, each turn on its own line

import { Template } from "@huggingface/jinja";
import { SlimtuneError } from "../core/errors.js";
import type { ChatMessage, InstructBody } from "./instruct-parse.js";

export interface Segment {
  text: string;
  /** True for answer text: its tokens carry the loss. */
  train: boolean;
}

/** Special-token strings a template may use, as tokenizer_config.json names them. */
export interface TemplateTokens {
  bos_token?: string;
  eos_token?: string;
  unk_token?: string;
  pad_token?: string;
}

export const ALPACA_PROMPT_WITH_INPUT =
  "Below is an instruction that describes a task, paired with an input that provides further context. " +
  "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
export const ALPACA_PROMPT =
  "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
  "### Instruction:\n{instruction}\n\n### Response:\n";

/**
 * The chat template tokenizer_config.json carries: a string, or (newer files) a list of
 * {name, template} of which "default" is used. Null when there is none.
 */
export function chatTemplateOf(config: Record<string, unknown>, file: string): string | null {
  const t = config.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t.find((x: unknown) => typeof x === "object" && x !== null && (x as { name?: unknown }).name === "default") as { template?: unknown } | undefined;
    if (named && typeof named.template === "string") return named.template;
  }
  throw new SlimtuneError("E_TOKENIZER", `"chat_template" is neither a string nor a list with a "default" entry; pass --chat-template FILE`, file);
}

/** Special-token strings from tokenizer_config.json (plain strings or {"content": …} objects). */
export function templateTokensOf(config: Record<string, unknown>): TemplateTokens {
  const out: TemplateTokens = {};
  for (const key of ["bos_token", "eos_token", "unk_token", "pad_token"] as const) {
    const v = config[key];
    const s = typeof v === "string" ? v : typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string" ? (v as { content: string }).content : undefined;
    if (s !== undefined) out[key] = s;
  }
  return out;
}

export class ChatRenderer {
  private readonly template: Template | null;

  /** `source` names the template in errors (a file, or "tokenizer_config.json"). */
  constructor(
    template: string | null,
    private readonly tokens: TemplateTokens = {},
    private readonly source = "the chat template",
  ) {
    try {
      this.template = template === null ? null : new Template(template);
    } catch (err) {
      throw new SlimtuneError("E_DATA", `the chat template does not parse as Jinja (${(err as Error).message})`, source);
    }
  }

  get hasTemplate(): boolean {
    return this.template !== null;
  }

  /** The chat template's text for a conversation (transformers' apply_chat_template, tokenize=False). */
  render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    if (!this.template) throw new Error("render() needs a template; check hasTemplate first");
    try {
      return this.template.render({ messages, add_generation_prompt: addGenerationPrompt, ...this.tokens });
    } catch (err) {
      const message = (err as Error).message;
      const hint = /undefined/i.test(message) ? ` (the template uses a variable that is not set: tokenizer_config.json defines ${Object.keys(this.tokens).join(", ") || "no special tokens"})` : "";
      throw new SlimtuneError("E_DATA", `the chat template refused this conversation: ${message}${hint}`, this.source);
    }
  }

  /** The record as prompt and answer segments, in order; consecutive segments alternate. */
  segments(body: InstructBody): Segment[] {
    switch (body.format) {
      case "text":
        return [{ text: body.text, train: true }];
      case "prompt-completion":
        return [
          { text: body.prompt, train: false },
          { text: body.completion, train: true },
        ];
      case "alpaca":
        if (this.template) return this.chatSegments(alpacaMessages(body));
        return [
          { text: alpacaPrompt(body.instruction, body.input), train: false },
          { text: body.output, train: true },
        ];
      case "messages":
        return this.template ? this.chatSegments(body.messages) : defaultChatSegments(body.messages);
    }
  }

  /**
   * The prompt a model answers at generation time (everything before the record's last answer,
   * with the generation prompt) and that answer, the reference.
   */
  promptAndReference(body: InstructBody): { prompt: string; reference: string } {
    switch (body.format) {
      case "text":
        throw new SlimtuneError("E_DATA", `"text" records have no prompt to answer; generation evaluation needs prompt/completion, Alpaca or messages records`);
      case "prompt-completion":
        return { prompt: body.prompt, reference: body.completion };
      case "alpaca":
        if (!this.template) return { prompt: alpacaPrompt(body.instruction, body.input), reference: body.output };
        return this.chatPrompt(alpacaMessages(body));
      case "messages":
        return this.template ? this.chatPrompt(body.messages) : defaultChatPrompt(body.messages);
    }
  }

  private chatPrompt(messages: readonly ChatMessage[]): { prompt: string; reference: string } {
    const last = lastAssistant(messages);
    return { prompt: this.render(messages.slice(0, last), true), reference: messages[last]!.content };
  }

  private chatSegments(messages: readonly ChatMessage[]): Segment[] {
    const out: Segment[] = [];
    let done = "";
    const push = (text: string, train: boolean) => {
      if (text === "") return;
      const prev = out[out.length - 1];
      if (prev && prev.train === train) prev.text += text;
      else out.push({ text, train });
    };
    messages.forEach((m, i) => {
      if (m.role !== "assistant") return;
      const before = this.render(messages.slice(0, i), true);
      const through = this.render(messages.slice(0, i + 1), false);
      if (!before.startsWith(done) || !through.startsWith(before)) {
        throw new SlimtuneError(
          "E_DATA",
          `the chat template renders turn ${i} differently once later turns follow (it is not a prefix of the longer conversation), ` +
            `so the answer's tokens cannot be located; pass --chat-template FILE with a template that renders turns in order`,
          this.source,
        );
      }
      push(before.slice(done.length), false);
      push(through.slice(before.length), true);
      done = through;
    });
    const full = this.render(messages, false);
    if (!full.startsWith(done)) {
      throw new SlimtuneError("E_DATA", "the chat template renders the last answer differently once the conversation is complete; pass --chat-template FILE", this.source);
    }
    push(full.slice(done.length), false);
    return out;
  }
}

function alpacaPrompt(instruction: string, input: string): string {
  const fill = (t: string) => t.replace("{instruction}", () => instruction).replace("{input}", () => input);
  return fill(input.trim() === "" ? ALPACA_PROMPT : ALPACA_PROMPT_WITH_INPUT);
}

function alpacaMessages(body: { instruction: string; input: string; output: string }): ChatMessage[] {
  const user = body.input.trim() === "" ? body.instruction : `${body.instruction}\n\n${body.input}`;
  return [
    { role: "user", content: user },
    { role: "assistant", content: body.output },
  ];
}

const DEFAULT_ROLE_LABEL = { system: "System", user: "User", assistant: "Assistant" } as const;

function defaultChatSegments(messages: readonly ChatMessage[]): Segment[] {
  const out: Segment[] = [];
  let prompt = "";
  messages.forEach((m, i) => {
    const sep = i === 0 ? "" : "\n";
    if (m.role === "assistant") {
      out.push({ text: `${prompt}${sep}Assistant: `, train: false }, { text: m.content, train: true });
      prompt = "";
    } else {
      prompt += `${sep}${DEFAULT_ROLE_LABEL[m.role]}: ${m.content}`;
    }
  });
  if (prompt !== "") out.push({ text: prompt, train: false });
  return out;
}

function defaultChatPrompt(messages: readonly ChatMessage[]): { prompt: string; reference: string } {
  const last = lastAssistant(messages);
  const before = defaultChatSegments([...messages.slice(0, last), { role: "assistant", content: "" }]);
  return { prompt: before.map((s) => s.text).join(""), reference: messages[last]!.content };
}

function lastAssistant(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === "assistant") return i;
  throw new SlimtuneError("E_DATA", "the conversation has no assistant message to answer");
}
