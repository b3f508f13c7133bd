// Labelled text in a TSV file with a header (`sentence<TAB>label`, as GLUE's SST-2 ships it).

import { SlimtuneError, quote } from "../core/errors.js";
import { readTextFile } from "./text-file.js";

export interface LabelledExample {
  text: string;
  label: number;
}

/**
 * Largest number of classes a label file may imply when none is declared. A label becomes a row of
 * the classification head (hidden_size floats each), so a label of 99,999,999,999 would ask for
 * terabytes; real label sets have at most thousands of classes.
 */
export const MAX_LABELS = 100_000;

const TEXT_COLUMNS = ["sentence", "text", "sentence1", "review", "content"];

export interface ReadTsvOptions {
  /** Declared number of classes (--num-labels): every label must be below it. Default: labels below MAX_LABELS. */
  numLabels?: number;
}

export function readLabelledTsv(file: string, opts: ReadTsvOptions = {}): { examples: LabelledExample[]; numLabels: number } {
  const bound = opts.numLabels ?? MAX_LABELS;
  const lines = readTextFile(file).split(/\r?\n/);
  const header = lines[0]!.split("\t").map((h) => h.trim().toLowerCase());
  const labelCol = header.indexOf("label");
  if (labelCol < 0) {
    throw new SlimtuneError("E_DATA", `line 1: the header ${quote(lines[0])} has no "label" column; expected e.g. "sentence<TAB>label"`, file);
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
      throw new SlimtuneError("E_DATA", `line ${i + 1}: label ${quote(raw)} is not a non-negative integer (column ${labelCol + 1})`, file);
    }
    const label = Number(raw);
    if (label >= bound) {
      const why = opts.numLabels !== undefined ? `the declared ${bound} labels (0…${bound - 1})` : `${bound} classes, the most slimtune accepts without --num-labels`;
      throw new SlimtuneError("E_DATA", `line ${i + 1}: label ${quote(raw)} is past ${why}; labels number the classes from 0`, file);
    }
    const text = cols[textCol];
    if (text === undefined) throw new SlimtuneError("E_DATA", `line ${i + 1}: no text in column ${textCol + 1}`, file);
    examples.push({ text, label });
  }
  if (examples.length === 0) throw new SlimtuneError("E_DATA", "no examples below the header; the file needs labelled rows", file);
  return { examples, numLabels: labelCount(examples) };
}

/**
 * One past the largest label of `examples`, and at least `atLeast`. A loop, not Math.max(...spread):
 * spreading 130,000 labels as arguments overflows the call stack.
 */
export function labelCount(examples: readonly { label: number }[], atLeast = 0): number {
  let n = atLeast;
  for (const e of examples) if (e.label + 1 > n) n = e.label + 1;
  return n;
}
