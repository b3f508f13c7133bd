// Tokenizes labelled examples one by one (no special tokens), as classification batches need.

import type { TextTokenizer } from "../formats/tokenizer.js";
import type { LabelledExample } from "./tsv.js";

export interface TokenizedExample {
  ids: Int32Array;
  label: number;
}

export function tokenizeExamples(examples: readonly LabelledExample[], tokenizer: TextTokenizer): TokenizedExample[] {
  return examples.map((e) => ({ ids: Int32Array.from(tokenizer.encode(e.text)), label: e.label }));
}
