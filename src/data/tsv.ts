// Labelled text in a TSV file with a header (`sentence<TAB>label`, as GLUE's SST-2 ships it).

import { SlimtuneError } from "../core/errors.js";
import { readTextFile } from "./text-file.js";

export interface LabelledExample {
  text: string;
  label: number;
}

const TEXT_COLUMNS = ["sentence", "text", "sentence1", "review", "content"];

export function readLabelledTsv(file: string): { examples: LabelledExample[]; numLabels: number } {
  const lines = readTextFile(file).split(/\r?\n/);
  const header = lines[0]!.split("\t").map((h) => h.trim().toLowerCase());
  const labelCol = header.indexOf("label");
  if (labelCol < 0) {
    throw new SlimtuneError("E_DATA", `line 1: the header "${lines[0]}" has no "label" column; expected e.g. "sentence<TAB>label"`, file);
  }
  let textCol = header.findIndex((h) => TEXT_COLUMNS.includes(h));
  if (textCol < 0) textCol = labelCol === 0 ? 1 : 0;
  const examples: LabelledExample[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const cols = line.split("\t");
    const raw = cols[labelCol]?.trim() ?? "";
    if (!/^\d+$/.test(raw)) {
      throw new SlimtuneError("E_DATA", `line ${i + 1}: label "${raw}" is not a non-negative integer (column ${labelCol + 1})`, file);
    }
    const text = cols[textCol];
    if (text === undefined) throw new SlimtuneError("E_DATA", `line ${i + 1}: no text in column ${textCol + 1}`, file);
    examples.push({ text, label: Number(raw) });
  }
  if (examples.length === 0) throw new SlimtuneError("E_DATA", "no examples below the header; the file needs labelled rows", file);
  const numLabels = Math.max(...examples.map((e) => e.label)) + 1;
  return { examples, numLabels };
}
