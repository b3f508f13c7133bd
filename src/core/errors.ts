// The one error class slimtune throws for anything a user can fix: a stable code, the file or value
// at fault, what was expected, and how to fix it.

export type SlimtuneErrorCode =
  | "E_ARG" // a CLI or API argument is missing or out of range
  | "E_NOT_FOUND" // a file or folder does not exist
  | "E_SAFETENSORS" // a safetensors file is corrupt or inconsistent
  | "E_CONFIG" // config.json is missing a field, has a wrong value, or names an unsupported model
  | "E_SHAPE" // a tensor has a shape other than the model requires
  | "E_TOKENIZER" // tokenizer.json is missing or unreadable
  | "E_DATA" // a data file is empty or malformed
  | "E_CHECKPOINT" // a checkpoint cannot be resumed
  | "E_GGUF" // a GGUF file is corrupt, truncated or holds what slimtune cannot read
  | "E_IO" // the file system refused: permission, disk full, a special file, a path that is a file
  | "E_DIVERGED" // training produced non-finite values or its loss diverged; nothing was published
  | "E_MEMORY" // the run would not fit in free memory
  | "E_ENGINE"; // the graph or ONNX Runtime rejected something (a bug if a user sees it)

export class SlimtuneError extends Error {
  override readonly name = "SlimtuneError";
  constructor(
    readonly code: SlimtuneErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
  }
}

/** Caps a piece of user input quoted in a message, so an error never prints megabytes. */
export function quote(value: unknown, max = 80): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : String(JSON.stringify(value) ?? value);
  } catch {
    // Deeply nested or cyclic input: say what it is, not what it holds.
    text = Array.isArray(value) ? "[array]" : typeof value === "object" && value !== null ? "{object}" : String(value);
  }
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}
