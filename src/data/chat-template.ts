// Chat templates from files: --chat-template FILE, or the one a model folder or GGUF file carries.
// The renderer itself (chat-render.ts) reads no files, so a web page uses it on bytes.

import fs from "node:fs";
import path from "node:path";
import { SlimtuneError } from "../core/errors.js";
import { regularFileSize, withIo } from "../core/io.js";
import { readTokenizerFiles } from "../formats/tokenizer.js";
import { ChatRenderer, chatTemplateOf, templateTokensOf } from "./chat-render.js";

export * from "./chat-render.js";

const MAX_TEMPLATE_BYTES = 1 << 20;

/** A chat template from a file (--chat-template), bounded and regular files only. */
export function readChatTemplateFile(file: string): string {
  const size = regularFileSize(file, "chat template");
  if (size > MAX_TEMPLATE_BYTES) throw new SlimtuneError("E_DATA", `is ${size} bytes; a chat template is at most 1 MiB of Jinja`, file);
  const text = withIo(file, "read the chat template", () => fs.readFileSync(file, "utf8"));
  if (text.trim() === "") throw new SlimtuneError("E_DATA", "is empty; it must hold a Jinja chat template", file);
  // Jinja drops one trailing newline of a template (transformers keeps keep_trailing_newline off); an editor adds one.
  return text.replace(/\r?\n$/, "");
}

/** The renderer for `modelSource` (a folder or GGUF file): --chat-template FILE, else its chat_template, else none. */
export function chatRendererFor(modelSource: string, chatTemplateFile?: string): { renderer: ChatRenderer; source: string } {
  const { config, file } = readTokenizerFiles(modelSource);
  const tokens = templateTokensOf(config);
  if (chatTemplateFile) return { renderer: new ChatRenderer(readChatTemplateFile(chatTemplateFile), tokens, chatTemplateFile), source: chatTemplateFile };
  // A GGUF file carries the template in its metadata (tokenizer.chat_template).
  const configFile = file.toLowerCase().endsWith(".gguf") ? `${file} (tokenizer.chat_template)` : path.join(path.dirname(file), "tokenizer_config.json");
  const template = chatTemplateOf(config, configFile);
  return template === null
    ? { renderer: new ChatRenderer(null, tokens), source: "none (the default per format)" }
    : { renderer: new ChatRenderer(template, tokens, configFile), source: configFile };
}
