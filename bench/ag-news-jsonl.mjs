// AG News topic classification as generation: each `sentence<TAB>label` row of a TSV becomes a
// prompt/completion record, the prompt ending in "\nTopic:" and the completion the class name
// (" World", " Sports", " Business", " Sci/Tech" from classes.txt). Usage: node bench/ag-news-jsonl.mjs IN.tsv CLASSES.txt OUT.jsonl
import fs from "node:fs";

const [input, classesFile, output] = process.argv.slice(2);
if (!output) throw new Error("usage: node bench/ag-news-jsonl.mjs IN.tsv CLASSES.txt OUT.jsonl");
const classes = fs.readFileSync(classesFile, "utf8").split("\n").map((l) => l.trim()).filter(Boolean);
const rows = fs.readFileSync(input, "utf8").split("\n").slice(1).filter((l) => l.trim() !== "");
const out = rows.map((line) => {
  const [sentence, label] = line.split("\t");
  const name = classes[Number(label)];
  if (name === undefined) throw new Error(`label ${label} has no class in ${classesFile}`);
  return JSON.stringify({ prompt: `${sentence}\nTopic:`, completion: ` ${name}`, template: "ag_news_topic" });
});
fs.writeFileSync(output, `${out.join("\n")}\n`);
process.stderr.write(`${out.length} records → ${output}\n`);
